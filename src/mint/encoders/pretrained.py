"""What the Hugging Face adapters share: holding the frozen model and its feature extractor, and identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mint.encoders.base import AudioEncoder

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")
# Config entries that record where or how a model was loaded, not what it computes.
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "_commit_hash")
_HASH_CHUNK = 8 * 1024 * 1024
# Bump when an adapter's pre- or post-processing changes, so cached features from before are not reused.
ADAPTER_VERSION = 1


def config_hash(model_config: Any) -> str:
    """sha256 of the model config's JSON, without the loading bookkeeping."""
    entries = {k: v for k, v in model_config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    text = json.dumps(entries, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_hash(directory: Path) -> str:
    """sha256 over the names and contents of the weight files directly in `directory`, in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)):
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def extractor_settings(feature_extractor: Any) -> dict:
    """The feature extractor's scalar settings (its filterbanks are derived from them)."""
    scalar = (str, int, float, bool, type(None))
    settings: dict = {}
    for key, value in sorted(feature_extractor.to_dict().items()):
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, scalar):
            settings[key] = value
        elif (
            isinstance(value, (list, tuple))
            and len(value) <= 16
            and all(isinstance(v, scalar) for v in value)
        ):
            settings[key] = list(value)
    return settings


class PretrainedEncoder(AudioEncoder):
    """A frozen Hugging Face audio model plus the feature extractor its checkpoint was trained with.

    `weights_dir` is the local checkpoint directory (None for a hub id, whose revision is recorded
    instead); its weight files are hashed on the first `identity()` call only.
    """

    def __init__(
        self,
        kind: str,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        hidden_size: int,
        weights_dir: Path | None = None,
    ) -> None:
        super().__init__(sample_rate=int(feature_extractor.sampling_rate), hidden_size=hidden_size)
        self.kind = kind
        self.model = model
        self.feature_extractor = feature_extractor
        self.name_or_path = name_or_path
        self.dtype_name = dtype
        self.weights_dir = weights_dir
        self._weights_hash: str | None = None
        self._freeze()

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def front_end(self) -> dict:
        """Settings that shape the model's input; adapters add their own pre-processing choices."""
        return {"feature_extractor": extractor_settings(self.feature_extractor)}

    def identity(self) -> dict:
        if self._weights_hash is None and self.weights_dir is not None:
            self._weights_hash = weights_hash(self.weights_dir)
        return {
            "kind": self.kind,
            "name_or_path": self.name_or_path,
            "config_hash": config_hash(self.model.config),
            "weights_hash": self._weights_hash,
            "revision": getattr(self.model.config, "_commit_hash", None),
            "dtype": self.dtype_name,
            "front_end": self.front_end(),
            "adapter_version": ADAPTER_VERSION,
        }

    def clips_as_numpy(self, waveforms: Tensor, lengths: Tensor) -> list[np.ndarray]:
        """Each clip's real samples, for the numpy-based Hugging Face feature extractors."""
        host = waveforms.detach().to("cpu", dtype=waveforms.dtype)
        return [host[i, : int(n)].numpy() for i, n in enumerate(lengths.tolist())]
