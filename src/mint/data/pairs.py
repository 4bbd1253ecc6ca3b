"""Stage-1 (audio, caption) pairs: a dataset indexed by (epoch, clip index) and its collate function."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import Dataset

from mint.audio.frontend import AudioFrontend, pad_batch
from mint.data.feature_cache import FeatureCache
from mint.data.sources import ClipSource
from mint.errors import DataError
from mint.objectives.matching import caption_key


def clip_key(clip_id: str) -> int:
    """Stable 63-bit key of a clip: two rows with the same key are never each other's negatives."""
    return int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "big") >> 1


class CaptionPairDataset(Dataset):
    """One item per (epoch, index): the clip's audio (or cached features) and one of its captions.

    The caption choice and the training crop come from a generator seeded by (seed, epoch, index),
    so an item is the same in any worker, process or resumed run.
    """

    def __init__(
        self,
        source: ClipSource,
        frontend: AudioFrontend,
        seed: int,
        train: bool = True,
        cache: FeatureCache | None = None,
    ) -> None:
        self.source = source
        self.frontend = frontend
        self.seed = seed
        self.train = train
        self.cache = cache

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.cache is not None:
            clip = self.source.clip(index)
            audio = {"features": self.cache.load(self.source, index, clip.id)}
        else:
            clip, waveform = self.source.load(index, self.frontend, rng if self.train else None)
            audio = {"waveform": waveform}
        if not clip.captions:
            raise DataError(f"clip {clip.id!r}: has no captions; stage-1 training needs at least one")
        caption = clip.captions[int(rng.integers(len(clip.captions)))] if self.train else clip.captions[0]
        return {**audio, "caption": caption, "audio_key": clip_key(clip.id), "text_key": caption_key(caption)}


def collate_pairs(items: list[dict]) -> dict:
    batch: dict = {
        "captions": [item["caption"] for item in items],
        "audio_keys": torch.tensor([item["audio_key"] for item in items], dtype=torch.long),
        "text_keys": torch.tensor([item["text_key"] for item in items], dtype=torch.long),
    }
    if "features" in items[0]:
        batch["features"], batch["feature_mask"] = pad_features([item["features"] for item in items])
    else:
        batch["waveforms"], batch["lengths"] = pad_batch([item["waveform"] for item in items])
    return batch


def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, D] feature sequences into [B, T_max, D] (float32) with a [B, T_max] validity mask."""
    longest = max(f.shape[0] for f in features)
    out = torch.zeros(len(features), longest, features[0].shape[1], dtype=torch.float32)
    mask = torch.zeros(len(features), longest, dtype=torch.bool)
    for row, feature in enumerate(features):
        out[row, : feature.shape[0]] = feature.float()
        mask[row, : feature.shape[0]] = True
    return out, mask
