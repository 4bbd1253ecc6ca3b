"""Scenes: one to three distinct events placed in time over a coloured-noise background.

Events keep their absolute levels in the mix (so "loud" and "soft" stay audible as such); the
background sits `snr_db` below the level of a soft event. Onsets are at least 0.3 s apart, so the
order of events is always audible, while the following event may start before the previous one
ends (an overlap, which the captions say).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mint.data.synth.events import (
    EVENT_KINDS,
    SOFT_DBFS,
    SPEECH,
    Event,
    check_kinds,
    render_event,
    sample_event,
    sample_speech_event,
)
from mint.errors import ConfigError

BACKGROUNDS: tuple[str, ...] = ("white", "pink", "brown")
PEAK_LIMIT = 0.9
_EDGE_SECONDS = 0.05
_MIN_STRIDE_SECONDS = 0.3
_LONGEST_EVENT_SECONDS = 1.3
_OVERLAP_PROBABILITY = 0.3


@dataclass(frozen=True)
class PlacedEvent:
    event: Event
    onset: float

    @property
    def offset(self) -> float:
        return self.onset + self.event.seconds


@dataclass(frozen=True)
class Scene:
    """Events sorted by onset; `seed` drives every random choice made while rendering."""

    events: tuple[PlacedEvent, ...]
    background: str
    snr_db: float
    clip_seconds: float
    seed: int

    @property
    def kinds(self) -> list[str]:
        return [placed.event.kind for placed in self.events]

    @property
    def speech(self) -> Event | None:
        """The spoken word, if the scene has one."""
        return next((placed.event for placed in self.events if placed.event.kind == SPEECH), None)

    def overlaps_previous(self, index: int) -> bool:
        """Whether event `index` starts before event `index - 1` has ended."""
        return index > 0 and self.events[index].onset < self.events[index - 1].offset


def _min_stride(seconds: float) -> float:
    return max(_MIN_STRIDE_SECONDS, 0.5 * seconds)


def min_clip_seconds(num_events: int) -> float:
    """Shortest clip that holds `num_events` of the longest events with audible order."""
    return 2 * _EDGE_SECONDS + (num_events - 1) * _min_stride(_LONGEST_EVENT_SECONDS) + _LONGEST_EVENT_SECONDS


def _place(events: list[Event], clip_seconds: float, rng: np.random.Generator) -> tuple[PlacedEvent, ...]:
    strides = []
    for event in events[:-1]:
        if rng.random() < _OVERLAP_PROBABILITY:
            stride = event.seconds * rng.uniform(0.5, 0.8)
        else:
            stride = event.seconds + rng.uniform(0.1, 0.5)
        strides.append(max(stride, _min_stride(event.seconds)))
    strides = np.array(strides)
    minima = np.array([_min_stride(event.seconds) for event in events[:-1]])
    room = clip_seconds - 2 * _EDGE_SECONDS - events[-1].seconds
    excess = strides.sum() - room
    if excess > 0:
        slack = float((strides - minima).sum())
        if slack < excess:
            raise ConfigError(
                f"clip_seconds: {clip_seconds} s is too short for {len(events)} events; "
                f"use at least {min_clip_seconds(len(events)):.2f} s"
            )
        # Tighten every gap in proportion to its slack: order stays audible, events may now overlap.
        strides = strides - (strides - minima) * (excess / slack)
    start = _EDGE_SECONDS + rng.uniform(0.0, max(room - float(strides.sum()), 0.0))
    onsets = start + np.concatenate([[0.0], np.cumsum(strides)])
    return tuple(PlacedEvent(event, float(onset)) for event, onset in zip(events, onsets, strict=True))


def sample_scene(
    rng: np.random.Generator,
    num_events: int | None = None,
    event_kinds: list[str] | None = None,
    clip_seconds: float = 4.0,
    min_events: int = 1,
    max_events: int = 3,
    snr_db_range: tuple[float, float] = (10.0, 30.0),
    speech_share: float = 0.0,
    speech_voices: str = "train",
) -> Scene:
    """Draw a scene of distinct kinds (from `event_kinds`, default all); `num_events` default is uniform.
    With probability `speech_share` one of its events is a spoken word instead, in a voice of
    `speech_voices` (see `mint.data.synth.speech.voices`)."""
    kinds = list(EVENT_KINDS if event_kinds is None else event_kinds)
    check_kinds(kinds, "event_kinds")
    if num_events is None:
        if not 1 <= min_events <= max_events:
            raise ConfigError(
                f"min_events/max_events: expected 1 <= min <= max, got {min_events}, {max_events}"
            )
        num_events = int(rng.integers(min_events, max_events + 1))
    if not 1 <= num_events <= len(kinds):
        raise ConfigError(
            f"num_events: expected 1 to {len(kinds)} (the number of distinct event kinds), got {num_events}"
        )
    chosen = [kinds[i] for i in rng.choice(len(kinds), size=num_events, replace=False)]
    events = [sample_event(rng, kind) for kind in chosen]
    # Drawn only when asked for, so that corpora without speech stay what they were.
    if speech_share > 0 and rng.random() < speech_share:
        events[int(rng.integers(num_events))] = sample_speech_event(rng, speech_voices)
    return Scene(
        events=_place(events, clip_seconds, rng),
        background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        snr_db=float(rng.uniform(*snr_db_range)),
        clip_seconds=float(clip_seconds),
        seed=int(rng.integers(2**63)),
    )


def coloured_noise(colour: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a power spectrum of 1 (white), 1/f (pink) or 1/f^2 (brown)."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(colour)
    if exponent is None:
        raise ConfigError(f"background: expected one of {list(BACKGROUNDS)}, got {colour!r}")
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    bins = np.arange(len(spectrum), dtype=np.float64)
    # Flatten below the lowest few bins, so brown noise is not one slow DC drift.
    spectrum *= np.maximum(bins, 4.0) ** (-exponent / 2.0)
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def render_scene(scene: Scene, sample_rate: int) -> np.ndarray:
    """Float32 mono clip of `round(clip_seconds * sample_rate)` samples, peak below `PEAK_LIMIT`."""
    num_samples = round(scene.clip_seconds * sample_rate)
    streams = [
        np.random.default_rng(child)
        for child in np.random.SeedSequence(scene.seed).spawn(1 + len(scene.events))
    ]
    background_rms = 10.0 ** ((SOFT_DBFS - scene.snr_db) / 20.0)
    mix = background_rms * coloured_noise(scene.background, num_samples, streams[0])
    for placed, stream in zip(scene.events, streams[1:], strict=True):
        wave = render_event(placed.event, sample_rate, stream)
        start = min(round(placed.onset * sample_rate), num_samples)
        stop = min(start + len(wave), num_samples)
        mix[start:stop] += wave[: stop - start]
    peak = float(np.max(np.abs(mix)))
    if peak > PEAK_LIMIT:
        # Only the rare sum of overlapping loud events gets here; scaling keeps relative levels.
        mix *= PEAK_LIMIT / peak
    return mix.astype(np.float32)
