"""Training: the loop on accelerate, optimizer and schedule, checkpoints. The library never imports this."""
