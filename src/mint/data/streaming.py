"""Streaming shards: a seeded, resumable reader over a shard set on disk or behind URLs.

The order of epoch `e`: the shards in an order permuted by `(seed, e)`, their samples numbered by
*slot* 0..total-1 in that order (the index's counts, so a slot is known without reading data);
slots cut into windows of `buffer_size`; window `w` emitted in an order permuted by
`(seed, e, w)`. The sample emitted `j`-th in window `w` has position
`e * total + w * buffer_size + j`. Memory holds one window, and a reader started at position
`P` reads only from the start of `P`'s window (whole shards before it are not even opened), so it
yields exactly what an uninterrupted reader yields from `P` on, for any `P`.

A sample that cannot be used (bad or missing metadata, no audio member, a shard that is
truncated, corrupt or cannot be fetched) keeps its position but yields nothing; it is logged and
listed in `ShardStream.report`, and reading goes on with the next sample or shard.
"""

from __future__ import annotations

import io
import itertools
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mint.data.manifest import ManifestRecord
from mint.data.shards import ShardEntry, ShardIndex, load_shard_index, open_location, parse_sample_record
from mint.data.sources import Clip
from mint.errors import DataError

logger = logging.getLogger(__name__)

# What a broken shard can raise while it is read: tar framing, I/O and network errors.
_READ_ERRORS = (tarfile.TarError, OSError, EOFError, DataError)


@dataclass(frozen=True)
class StreamSample:
    position: int
    key: str
    shard: str
    record: ManifestRecord  # `audio` holds the name of the audio member
    audio: bytes

    @property
    def clip(self) -> Clip:
        return Clip.from_record(self.record)

    def audio_file(self) -> BinaryIO:
        """The audio bytes as a named in-memory file, for `AudioFrontend.load`."""
        stream = io.BytesIO(self.audio)
        stream.name = f"{self.shard}:{self.record.audio}"
        return stream


@dataclass
class StreamReport:
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (shard or shard:key, reason)

    def add(self, where: str, reason: str) -> None:
        logger.warning("shard stream: %s: %s", where, reason)
        self.skipped.append((where, reason))


def iter_tar_samples(stream: BinaryIO, skip: int = 0) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group a tar stream's consecutive members by key (`dir/key.ext`), WebDataset style.

    The first `skip` samples are passed over without reading their contents into memory.
    """
    key: str | None = None
    parts: dict[str, bytes] = {}
    seen = 0
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            name = Path(member.name)
            member_key = str(name.parent / name.name.partition(".")[0])
            if member_key != key:
                if key is not None and seen > skip:
                    yield key, parts
                key, parts = member_key, {}
                seen += 1
            if seen > skip:
                handle = archive.extractfile(member)
                parts[name.name.partition(".")[2]] = handle.read() if handle is not None else b""
    if key is not None and seen > skip:
        yield key, parts


class ShardStream:
    """Iterate the samples of a shard set from position `start` on, for `epochs` epochs (None: forever).

    With `shuffle=False` the order is the index's: shard by shard, sample by sample.
    """

    def __init__(
        self,
        index: ShardIndex,
        seed: int = 0,
        buffer_size: int = 1000,
        start: int = 0,
        epochs: int | None = 1,
        shuffle: bool = True,
    ) -> None:
        if buffer_size < 1:
            raise DataError(f"buffer_size: expected a positive integer, got {buffer_size}")
        if start < 0:
            raise DataError(f"start: expected a position >= 0, got {start}")
        if epochs is not None and epochs < 0:
            raise DataError(f"epochs: expected None or >= 0, got {epochs}")
        self.index = index
        self.seed = seed
        self.buffer_size = buffer_size
        self.start = start
        self.epochs = epochs
        self.shuffle = shuffle
        self.report = StreamReport()

    @classmethod
    def from_index(cls, location: str, **options) -> ShardStream:
        """A stream over the shard set whose `index.json` is at `location` (path, file:// or http(s) URL)."""
        return cls(load_shard_index(location), **options)

    def _shard_order(self, epoch: int) -> list[int]:
        count = len(self.index.shards)
        if not self.shuffle:
            return list(range(count))
        return np.random.default_rng([self.seed, epoch]).permutation(count).tolist()

    def _window_order(self, epoch: int, window: int, size: int) -> list[int]:
        if not self.shuffle:
            return list(range(size))
        return np.random.default_rng([self.seed, epoch, window]).permutation(size).tolist()

    def _sample(self, shard: str, key: str, parts: dict[str, bytes]) -> StreamSample | None:
        where = f"{shard}:{key}"
        if "json" not in parts:
            self.report.add(where, "no .json member")
            return None
        try:
            record = parse_sample_record(parts["json"], where)
        except DataError as error:
            self.report.add(where, str(error))
            return None
        extension = record.audio.partition(".")[2]
        if extension not in parts:
            self.report.add(where, f"no {record.audio} member")
            return None
        return StreamSample(-1, key, shard, record, parts[extension])

    def _shard_slots(
        self, entry: ShardEntry, first_slot: int, skip: int
    ) -> Iterator[tuple[int, StreamSample | None]]:
        """(slot, sample or None) for slots `first_slot + skip ..` of one shard: exactly its listed count."""
        count = skip
        try:
            with open_location(entry.location) as stream:
                for key, parts in iter_tar_samples(stream, skip):
                    if count == entry.samples:
                        self.report.add(entry.location, f"holds more than the {entry.samples} samples listed")
                        break
                    yield first_slot + count, self._sample(entry.location, key, parts)
                    count += 1
        except _READ_ERRORS as error:
            self.report.add(entry.location, f"unreadable after {count} of {entry.samples} samples ({error})")
        else:
            if count < entry.samples:
                self.report.add(entry.location, f"ends after {count} of {entry.samples} samples (truncated)")
        for slot in range(count, entry.samples):
            yield first_slot + slot, None

    def _slots(self, order: list[int], first: int) -> Iterator[tuple[int, StreamSample | None]]:
        """Every slot of the epoch from `first` on; shards wholly before `first` are not opened."""
        slot = 0
        for shard in order:
            entry = self.index.shards[shard]
            if slot + entry.samples > first:
                yield from self._shard_slots(entry, slot, max(0, first - slot))
            slot += entry.samples

    def __iter__(self) -> Iterator[StreamSample]:
        total = self.index.total
        if total == 0:
            return
        epoch, offset = divmod(self.start, total)
        size = self.buffer_size
        while self.epochs is None or epoch < self.epochs:
            first_window = offset - offset % size
            slots = self._slots(self._shard_order(epoch), first_window)
            skip = offset - first_window
            for window_start in range(first_window, total, size):
                length = min(size, total - window_start)
                window = dict(itertools.islice(slots, length))
                order = self._window_order(epoch, window_start // size, length)
                for j in range(skip, length):
                    sample = window.get(window_start + order[j])
                    if sample is not None:
                        yield replace(sample, position=epoch * total + window_start + j)
                skip = 0
            epoch, offset = epoch + 1, 0
