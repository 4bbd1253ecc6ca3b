"""Data: manifests, datasets, generated audio and loaders for published dataset layouts."""
