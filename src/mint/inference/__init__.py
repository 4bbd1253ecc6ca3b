"""Inference on saved models: `MintPipeline` (caption, ask, classify, embed, search) and the audio index."""

from mint.inference.index import AudioIndex, model_fingerprint
from mint.inference.indexing import BuildReport, build_index
from mint.inference.pipeline import CLASSIFY_METHODS, Classification, MintPipeline
from mint.inference.search import SearchHit, search_index

__all__ = [
    "CLASSIFY_METHODS",
    "AudioIndex",
    "BuildReport",
    "Classification",
    "MintPipeline",
    "SearchHit",
    "build_index",
    "model_fingerprint",
    "search_index",
]
