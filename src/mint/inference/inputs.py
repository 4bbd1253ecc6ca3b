"""What the pipeline accepts as audio, turned into the model's float32 mono clips.

One clip is a path (`str` or `os.PathLike`), encoded bytes, a binary file object, an `(array, rate)`
pair, or a bare array (or tensor) with the pipeline call's `sample_rate`. Arrays are `[frames]` or
`[frames, channels]`, float in [-1, 1] or signed-integer PCM. A `list` is always a batch of clips, so a
multi-channel array is never mistaken for several clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, BinaryIO

import numpy as np
import torch

from mint.audio.frontend import AudioFrontend, AudioReader
from mint.errors import AudioError

AudioInput = (
    str
    | os.PathLike
    | bytes
    | bytearray
    | memoryview
    | BinaryIO
    | np.ndarray
    | torch.Tensor
    | tuple[Any, int]
)
EncodedSource = str | os.PathLike | bytes | bytearray | memoryview


@dataclass(frozen=True)
class ClipBatch:
    """Inputs as a list, and whether the caller gave one clip (results are then unwrapped)."""

    items: list[AudioInput]
    single: bool


def as_batch(audio: AudioInput | list[AudioInput]) -> ClipBatch:
    if isinstance(audio, list):
        if not audio:
            raise AudioError("audio: expected at least one clip, got an empty list")
        return ClipBatch(list(audio), single=False)
    return ClipBatch([audio], single=True)


def _is_rate(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) > 0


def _describe(item: object) -> str:
    return type(item).__name__


def open_reader(
    item: AudioInput, frontend: AudioFrontend, sample_rate: int | None, name: str = "audio"
) -> AudioReader:
    """One input, of any length, to be read span by span at the front end's rate."""
    if isinstance(item, tuple):
        if len(item) != 2 or not _is_rate(item[1]):
            raise AudioError(f"{name}: expected an (array, sample_rate) pair, got a tuple of {len(item)}")
        return frontend.samples_reader(_samples(item[0], name), int(item[1]))
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if sample_rate is None:
            raise AudioError(
                f"{name}: an array needs its sample rate; pass sample_rate=... or an (array, rate) pair"
            )
        return frontend.samples_reader(_samples(item, name), sample_rate)
    if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(item, "read"):
        return frontend.reader(item)
    raise AudioError(
        f"{name}: expected a path, bytes, a binary file, an array with a sample rate or an "
        f"(array, rate) pair, got {_describe(item)}"
    )


def load_clip(
    item: AudioInput, frontend: AudioFrontend, sample_rate: int | None, name: str = "audio"
) -> np.ndarray:
    """One input as `[N]` float32 at the front end's rate, cropped to its clip length (from the start)."""
    return open_reader(item, frontend, sample_rate, name).read(0, frontend.max_samples)


def _samples(value: object, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise AudioError(f"{name}: expected a numpy array or a tensor of samples, got {_describe(value)}")


def chunks(items: Sequence[AudioInput], size: int) -> Iterator[tuple[int, Sequence[AudioInput]]]:
    """(offset, slice) of `items`, `size` at a time."""
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
