"""The built-in demo: a procedural corpus, both training stages and the evaluation, on one laptop."""
