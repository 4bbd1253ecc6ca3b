"""mint: audio-language models from a frozen audio encoder, a trainable Bridge-Net and a frozen LLM.

    from mint import MintModel, MintPipeline
    pipeline = MintPipeline.from_pretrained("runs/instruct/model")
    pipeline.caption("dog.wav")

The names below are loaded on first use, so `import mint` (or `mint.errors`, `mint.config`) stays light:
torch and transformers load only when a model class is asked for.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("mint-audio")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    "MintModel": "mint.modeling",
    "MintConfig": "mint.modeling",
    "MintPipeline": "mint.inference",
    "AudioIndex": "mint.inference",
    "PretrainConfig": "mint.training.config",
    "InstructConfig": "mint.training.config",
    "TrainerConfig": "mint.training.config",
    "load_config": "mint.config",
    "MintError": "mint.errors",
}

__all__ = [  # noqa: RUF022 - _EXPORTS's order
    "__version__",
    "MintModel",
    "MintConfig",
    "MintPipeline",
    "AudioIndex",
    "PretrainConfig",
    "InstructConfig",
    "TrainerConfig",
    "load_config",
    "MintError",
]

if TYPE_CHECKING:
    from mint.config import load_config
    from mint.errors import MintError
    from mint.inference import AudioIndex, MintPipeline
    from mint.modeling import MintConfig, MintModel
    from mint.training.config import InstructConfig, PretrainConfig, TrainerConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
