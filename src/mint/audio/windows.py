"""Audio longer than the model's clip length as overlapping windows of that length, read one at a time.

A recording of `total` samples gets windows of `window` samples starting every `hop` (`window` minus the
overlap); the last one may be shorter, and a window is only started if it reaches past the previous
one's end, so an event that straddles a boundary lies whole in the next window when it is no longer
than the overlap. A recording no longer than one window is one window: the plain path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mint.audio.frontend import AudioReader
from mint.errors import ConfigError


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # output samples
    length: int
    sample_rate: int

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def end_seconds(self) -> float:
        return (self.start + self.length) / self.sample_rate


def format_span(start: float, end: float) -> str:
    """'47:00.0-47:03.0': a span of a recording in minutes and seconds to a tenth, as the CLI prints it."""

    def clock(seconds: float) -> str:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes):02d}:{rest:04.1f}"

    return f"{clock(start)}-{clock(end)}"


def plan_windows(total: int, window: int, hop: int, sample_rate: int) -> list[Window]:
    """The windows of a `total`-sample recording (see the module doc)."""
    if not 0 < hop <= window:
        raise ConfigError(f"windows: expected 0 < hop <= window, got hop {hop} and window {window} samples")
    count = 1 if total <= window else 1 + math.ceil((total - window) / hop)
    return [
        Window(index, index * hop, min(window, total - index * hop), sample_rate) for index in range(count)
    ]


def window_sizes(window: int, overlap: float) -> tuple[int, int]:
    """(window, hop) in samples for windows of `window` samples overlapping by the fraction `overlap`."""
    return window, max(1, window - math.floor(overlap * window))


def read_windows(reader: AudioReader, window: int, hop: int) -> Iterator[tuple[Window, np.ndarray]]:
    """Each window of `reader`'s audio with its samples, decoded when it is reached."""
    for planned in plan_windows(reader.total, window, hop, reader.frontend.sample_rate):
        yield planned, reader.read(planned.start, planned.length)
