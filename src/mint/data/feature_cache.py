"""Frozen-encoder feature cache: encoder outputs stored once (fp16), keyed by what produced them.

Each encoder's outputs live in a folder of their own under the cache directory (`encoders/<digest of
the encoder's identity>`); a fused encoder's parts (`model.encoders`) are cached each on its own and
fused when loaded (`EncoderFeatureCache`).

The key of a clip is SHA-256 over (audio content digest, encoder identity, front-end settings),
so a change to any of them leads to a key that is not in the cache: stale features are never
used. Cached features come from the deterministic (evaluation) crop.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mint.audio.frontend import AudioFrontend, FrontendConfig, pad_batch
from mint.data.sources import ClipSource
from mint.encoders.base import AudioEncoder, EncoderOutput
from mint.encoders.fused import FusedEncoder, fuse
from mint.errors import DataError, MintError
from mint.storage import atomic_write_text

META_NAME = "meta.json"


class StaleCacheError(MintError):
    """The cache holds no features for this clip under the current audio, encoder and settings."""


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


class FeatureCache:
    def __init__(
        self, directory: str | os.PathLike, encoder_identity: dict, frontend: FrontendConfig
    ) -> None:
        self.directory = Path(directory)
        self.settings = {"encoder": encoder_identity, "frontend": asdict(frontend)}
        self.settings_digest = hashlib.sha256(_canonical(self.settings).encode()).hexdigest()

    def key(self, content_digest: str) -> str:
        return hashlib.sha256(f"{content_digest}:{self.settings_digest}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / "features" / key[:2] / f"{key}.safetensors"

    def _stale_reason(self) -> str:
        meta_path = self.directory / META_NAME
        if not meta_path.is_file():
            return (
                f"{self.directory} is not a feature cache (no {META_NAME}); run `mint cache-features` first"
            )
        try:
            recorded = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"its {META_NAME} is unreadable"
        if not isinstance(recorded, dict):
            return f"its {META_NAME} is not a JSON object"
        if _canonical(recorded.get("encoder")) != _canonical(self.settings["encoder"]):
            return "the audio encoder differs from the one the cache was built with"
        if _canonical(recorded.get("frontend")) != _canonical(self.settings["frontend"]):
            return "the audio front-end settings differ from those the cache was built with"
        return "the audio content changed since it was cached, or it was never cached"

    def load(self, source: ClipSource, index: int, clip_id: str) -> torch.Tensor:
        """Cached features [T, D] (fp16) of clip `index`, or StaleCacheError naming the clip and why."""
        try:
            digest = source.content_digest(index)
        except OSError as error:
            # The content digest that keys the cache is read from the audio, which must still exist.
            raise DataError(
                f"clip {clip_id!r}: its audio cannot be read to find its cached features ({error})"
            ) from None
        path = self.path(self.key(digest))
        if not path.is_file():
            raise StaleCacheError(
                f"feature cache {self.directory}: no valid entry for clip {clip_id!r}: {self._stale_reason()}; "
                "rebuild it with `mint cache-features`"
            )
        try:
            return load_file(str(path))["features"]
        except (SafetensorError, OSError, KeyError) as error:
            raise DataError(
                f"feature cache {self.directory}: entry {path} of clip {clip_id!r} is unreadable ({error}); "
                "delete it and run `mint cache-features` again"
            ) from None

    def write(self, key: str, features: torch.Tensor) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"features": features.to(torch.float16).contiguous()}, str(tmp))
        os.replace(tmp, path)

    def write_meta(self) -> None:
        atomic_write_text(
            self.directory / META_NAME, json.dumps(self.settings, indent=2, sort_keys=True, default=str)
        )


@dataclass
class CacheReport:
    written: int = 0
    already_cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)

    def add(self, other: CacheReport) -> None:
        self.written += other.written
        self.already_cached += other.already_cached
        self.failed.extend(other.failed)


def encoder_parts(encoder: AudioEncoder) -> list[AudioEncoder]:
    """The encoders whose outputs are cached on their own: a fused encoder's parts, or the encoder."""
    return list(encoder.parts) if isinstance(encoder, FusedEncoder) else [encoder]


def _part_cache(directory: str | os.PathLike, part: AudioEncoder, frontend: FrontendConfig) -> FeatureCache:
    identity = part.identity()
    digest = hashlib.sha256(_canonical(identity).encode()).hexdigest()[:16]
    return FeatureCache(Path(directory) / "encoders" / digest, identity, frontend)


class EncoderFeatureCache:
    """The cached outputs of a model's encoder under `directory`: each encoder in a folder of its own
    (`encoders/<digest of its identity>`), so a fused encoder's parts are cached separately (a part that
    two models share, or that a fused model shares with a single-encoder one, is encoded once) and fused
    on loading as `FusedEncoder` fuses them."""

    def __init__(self, directory: str | os.PathLike, encoder: AudioEncoder, frontend: FrontendConfig) -> None:
        self.directory = Path(directory)
        self.caches = [_part_cache(directory, part, frontend) for part in encoder_parts(encoder)]

    def load(self, source: ClipSource, index: int, clip_id: str) -> torch.Tensor:
        """Cached features [T, D] (fp16) of clip `index`, or StaleCacheError naming the clip and why."""
        parts = []
        for cache in self.caches:
            try:
                parts.append(cache.load(source, index, clip_id))
            except StaleCacheError:
                if cache.directory.is_dir() or not (self.directory / "encoders").is_dir():
                    raise
                raise StaleCacheError(
                    f"feature cache {self.directory}: no valid entry for clip {clip_id!r}: the audio encoder "
                    "differs from the ones the cache was built with (it holds other encoders' features only); "
                    "rebuild it with `mint cache-features`"
                ) from None
        if len(parts) == 1:
            return parts[0]
        outputs = [
            EncoderOutput(part.float()[None], torch.ones(1, part.shape[0], dtype=torch.bool))
            for part in parts
        ]
        return fuse(outputs).features[0].to(torch.float16)


@torch.no_grad()
def build_feature_cache(
    encoder: AudioEncoder,
    source: ClipSource,
    frontend: AudioFrontend,
    directory: str | os.PathLike,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> CacheReport:
    """Encode every clip not already cached, with each encoder of `encoder_parts(encoder)` into its own
    folder (`EncoderFeatureCache`); clips whose audio cannot be read are skipped and reported."""
    report = CacheReport()
    for part in encoder_parts(encoder):
        report.add(
            _build_part(
                part,
                _part_cache(directory, part, frontend.config),
                source,
                frontend,
                batch_size,
                device,
                progress,
            )
        )
    return report


def _build_part(
    encoder: AudioEncoder,
    cache: FeatureCache,
    source: ClipSource,
    frontend: AudioFrontend,
    batch_size: int,
    device: torch.device | str,
    progress: bool,
) -> CacheReport:
    cache.directory.mkdir(parents=True, exist_ok=True)
    cache.write_meta()
    report = CacheReport()
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        waveforms, lengths = pad_batch([waveform for _, waveform in pending])
        out = encoder(waveforms.to(device), lengths.to(device))
        for row, (key, _) in enumerate(pending):
            cache.write(key, out.features[row, out.mask[row]].cpu())
        report.written += len(pending)
        pending.clear()

    for index in tqdm(range(len(source)), desc="caching features", disable=not progress):
        clip_id = str(index)
        try:
            clip_id = source.clip(index).id
            key = cache.key(source.content_digest(index))
            if cache.path(key).is_file():
                report.already_cached += 1
                continue
            _, waveform = source.load(index, frontend, None)
        except (MintError, OSError) as error:
            report.failed.append((clip_id, str(error)))
            continue
        pending.append((key, waveform))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return report
