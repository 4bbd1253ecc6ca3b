"""Evaluation: caption, retrieval and classification metrics, and the runners that apply them."""
