"""Clip sources: indexable collections of clips with their text, from a manifest or generated on the fly.

A source hands out the *raw* clip (decoded samples and rate, or the generator's output); the audio
front end turns it into model input. Every clip has a content digest, which keys the feature cache
and tells whether the audio changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from mint.audio.frontend import AudioFrontend
from mint.data.manifest import ManifestRecord, QAPair, TimedEvent, read_manifest
from mint.data.synth.corpus import SynthSpec, synth_example


@dataclass
class Clip:
    id: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    qa: list[QAPair] = field(default_factory=list)
    # A generated clip's full description: clips with the same one are the same content (stage-1 keys).
    event_description: str | None = None
    # Each timed event's own caption ("a brief soft low-pitched tone"), where the events have them.
    event_captions: list[str] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: ManifestRecord) -> Clip:
        return cls(
            record.id,
            list(record.captions),
            list(record.labels),
            list(record.qa),
            record.event_description,
            event_captions(record.events),
        )


def event_captions(events: Sequence[TimedEvent]) -> list[str]:
    """The captions of `events` that have one, in order, without repeats."""
    return list(dict.fromkeys(event.caption for event in events if event.caption))


class ClipSource(Protocol):
    def __len__(self) -> int: ...

    def clip(self, index: int) -> Clip: ...

    def load(
        self, index: int, frontend: AudioFrontend, rng: np.random.Generator | None
    ) -> tuple[Clip, np.ndarray]:
        """The clip and its waveform through the front end (random crop when `rng` is given)."""
        ...

    def content_digest(self, index: int) -> str: ...


class ManifestSource:
    """Clips listed in a JSONL manifest; audio decoded from disk on demand."""

    def __init__(self, records: list[ManifestRecord]) -> None:
        self.records = records

    @classmethod
    def from_file(cls, path: str | Path) -> ManifestSource:
        return cls(read_manifest(path))

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, index: int) -> Clip:
        return Clip.from_record(self.records[index])

    def load(
        self, index: int, frontend: AudioFrontend, rng: np.random.Generator | None
    ) -> tuple[Clip, np.ndarray]:
        return self.clip(index), frontend.load(self.records[index].audio, rng=rng)

    def content_digest(self, index: int) -> str:
        digest = hashlib.sha256()
        with open(self.records[index].audio, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


class SyntheticSource:
    """Procedural sound scenes (`mint.data.synth`), generated deterministically from (seed, index)."""

    def __init__(self, spec: SynthSpec) -> None:
        self.spec = spec

    def __len__(self) -> int:
        return self.spec.num_clips

    def _clip(self, index: int, example) -> Clip:
        return Clip(
            f"synth-{self.spec.seed}-{index:07d}",
            example.captions,
            example.labels,
            example.qa,
            example.event_description,
            event_captions(example.events),
        )

    def clip(self, index: int) -> Clip:
        return self._clip(index, synth_example(self.spec, index))

    def load(
        self, index: int, frontend: AudioFrontend, rng: np.random.Generator | None
    ) -> tuple[Clip, np.ndarray]:
        example = synth_example(self.spec, index)
        return self._clip(index, example), frontend.process(example.audio, self.spec.sample_rate, rng=rng)

    def content_digest(self, index: int) -> str:
        audio = np.ascontiguousarray(synth_example(self.spec, index).audio, dtype=np.float32)
        return hashlib.sha256(audio.tobytes()).hexdigest()
