"""WebDataset-format tar shards of a manifest: the writer, the index, and random access to local shards.

A shard is a plain tar file. Sample `n` of a shard set (counted over the whole set) is two
consecutive members, `<key>.<ext>` with the clip's original audio bytes (ext from the sniffed
container: wav, flac, ogg or mp3) and `<key>.json` with its manifest record (id, captions,
labels, qa, ...; `audio` names the audio member), where `key = f"{n:09d}"`. Any WebDataset
reader groups them by key. Beside the shards, `index.json` lists every shard with its sample
count, size and SHA-256; readers resolve shard names against the index's location, so a shard
set can be served from a folder, a `file://` URL or an http(s) server unchanged.

Shards and the index are written to temporary names and renamed into place, the index last: a
reader never sees a half-written shard, and an interrupted write leaves the previous index.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import os
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mint.audio.decode import audio_info
from mint.audio.frontend import AudioFrontend
from mint.data.manifest import ManifestRecord, record_from_json
from mint.data.sources import Clip
from mint.errors import AudioError, DataError
from mint.storage import atomic_write_text

INDEX_NAME = "index.json"
INDEX_FORMAT = "mint-webdataset"
INDEX_VERSION = 1
AUDIO_EXTENSIONS = {"WAV": "wav", "RF64": "wav", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3"}
URL_SCHEMES = ("http", "https", "file")
# Network reads give up after this long without data rather than hanging a training run.
URL_TIMEOUT_S = 60.0


def sample_key(number: int) -> str:
    return f"{number:09d}"


def is_url(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme in URL_SCHEMES


def open_location(location: str) -> BinaryIO:
    """A binary stream over a local path or a `file://` / `http(s)://` URL (read forward only)."""
    try:
        if is_url(location):
            return urllib.request.urlopen(location, timeout=URL_TIMEOUT_S)
        return open(location, "rb")
    except OSError as error:
        raise DataError(f"{location}: cannot be opened ({error})") from error


def resolve_location(index_location: str, name: str) -> str:
    """Where shard `name` lives: beside the index, as a URL or as a path like the index."""
    if is_url(index_location):
        return urllib.parse.urljoin(index_location, name)
    return str(Path(index_location).parent / name)


def local_path(location: str) -> Path | None:
    """The file a path or `file://` URL points at; None for a remote URL."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return None if parts.scheme in URL_SCHEMES else Path(location)


@dataclass(frozen=True)
class ShardEntry:
    location: str  # resolved path or URL
    samples: int


@dataclass
class ShardIndex:
    location: str
    shards: list[ShardEntry]

    @property
    def total(self) -> int:
        return sum(shard.samples for shard in self.shards)


def load_shard_index(location: str | os.PathLike) -> ShardIndex:
    """Read and check an `index.json` written by `write_shards` (a local path or a URL)."""
    location = str(location)
    if not is_url(location) and Path(location).is_dir():
        location = str(Path(location) / INDEX_NAME)
    with open_location(location) as stream:
        try:
            payload = json.loads(stream.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{location}: not a shard index (invalid JSON: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") != INDEX_FORMAT:
        raise DataError(f'{location}: not a shard index (expected "format": "{INDEX_FORMAT}")')
    if payload.get("version") != INDEX_VERSION:
        raise DataError(
            f"{location}: shard index version {payload.get('version')!r}, expected {INDEX_VERSION}"
        )
    shards = payload.get("shards")
    if not isinstance(shards, list):
        raise DataError(f"{location}: 'shards' must be a list of {{name, samples}} entries")
    entries = []
    for number, shard in enumerate(shards):
        if not (isinstance(shard, dict) and isinstance(shard.get("name"), str)) or not (
            isinstance(shard.get("samples"), int) and shard["samples"] >= 0
        ):
            raise DataError(f"{location}: shards[{number}] must hold a 'name' and a 'samples' count >= 0")
        entries.append(ShardEntry(resolve_location(location, shard["name"]), shard["samples"]))
    return ShardIndex(location, entries)


# ----- writing -------------------------------------------------------------------------------


@dataclass
class ShardReport:
    index_path: Path
    written: int = 0
    shards: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)

    def summary(self, limit: int = 5) -> str:
        lines = [f"wrote {self.written} samples in {self.shards} shard(s); index {self.index_path}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} clip(s):")
            lines.extend(f"  {clip_id}: {reason}" for clip_id, reason in self.skipped[:limit])
            if len(self.skipped) > limit:
                lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    # Fixed metadata: the same samples always give byte-identical shards.
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def _write_shard(directory: Path, name: str, samples: Iterable[tuple[str, str, bytes, dict]]) -> dict:
    """Write `samples` (key, audio extension, audio bytes, metadata) as shard `name`; its index entry."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    count = 0
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as archive:
            for key, extension, audio, metadata in samples:
                _add_member(archive, f"{key}.{extension}", audio)
                _add_member(archive, f"{key}.json", json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
                count += 1
        entry = {
            "name": name,
            "samples": count,
            "bytes": tmp.stat().st_size,
            "sha256": hashlib.sha256(tmp.read_bytes()).hexdigest(),
        }
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return entry


def _readable_samples(
    records: Iterable[ManifestRecord], report: ShardReport
) -> Iterator[tuple[str, str, bytes, dict]]:
    for record in records:
        try:
            fmt = audio_info(record.audio).format
            audio = Path(record.audio).read_bytes()
        except (AudioError, OSError) as error:
            report.skipped.append((record.id, str(error)))
            continue
        key = sample_key(report.written)
        extension = AUDIO_EXTENSIONS[fmt]
        report.written += 1
        yield key, extension, audio, {**record.to_json(), "audio": f"{key}.{extension}"}


def write_shards(
    records: Iterable[ManifestRecord], out_dir: str | os.PathLike, shard_size: int, prefix: str = "shard"
) -> ShardReport:
    """Pack the records' audio and metadata into tar shards of `shard_size` samples and an index.

    Clips whose audio is missing or unreadable are skipped and reported, not written.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise DataError(f"shard_size: expected a positive integer, got {shard_size!r}")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    report = ShardReport(index_path=directory / INDEX_NAME)
    samples = _readable_samples(records, report)
    entries = []
    while (first := next(samples, None)) is not None:
        chunk = itertools.chain([first], itertools.islice(samples, shard_size - 1))
        entries.append(_write_shard(directory, f"{prefix}-{len(entries):06d}.tar", chunk))
    index = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "samples": report.written,
        "shards": entries,
        "skipped": [{"id": clip_id, "reason": reason} for clip_id, reason in report.skipped],
    }
    atomic_write_text(report.index_path, json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    report.shards = len(entries)
    return report


# ----- random access to local shards ------------------------------------------------------------


def parse_sample_record(data: bytes, where: str) -> ManifestRecord:
    """The manifest record stored as a sample's JSON member."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{where}: metadata is not valid JSON ({error})") from None
    return record_from_json(obj, where)


class ShardSource:
    """A `ClipSource` over local shards: clip `i` is sample `i` of the index, read by seeking.

    Keeps the step-indexed sampler's contract (any clip by index, in any process), so it trains
    exactly like the manifest the shards were written from. A shard's member table is read from
    its tar headers the first time one of its clips is asked for.
    """

    def __init__(self, index: ShardIndex) -> None:
        self.index = index
        self._paths: list[Path] = []
        for shard in index.shards:
            path = local_path(shard.location)
            if path is None:
                raise DataError(
                    f"{index.location}: {shard.location} is remote; random access needs local shards "
                    "(stream remote ones with mint.data.streaming.ShardStream)"
                )
            self._paths.append(path)
        self._starts = np.cumsum([0] + [shard.samples for shard in index.shards]).tolist()
        self._tables: dict[int, list[tuple[str, dict[str, tuple[int, int]]]]] = {}

    @classmethod
    def from_index(cls, location: str | os.PathLike) -> ShardSource:
        return cls(load_shard_index(location))

    def __len__(self) -> int:
        return self.index.total

    def _members(self, shard: int) -> list[tuple[str, dict[str, tuple[int, int]]]]:
        """Per sample of the shard: its key and, per extension, the (byte offset, size) of its member."""
        if shard not in self._tables:
            path = self._paths[shard]
            samples: dict[str, dict[str, tuple[int, int]]] = {}
            try:
                with tarfile.open(path, "r:") as archive:
                    for member in archive.getmembers():
                        if member.isfile():
                            key, _, extension = Path(member.name).name.partition(".")
                            samples.setdefault(key, {})[extension] = (member.offset_data, member.size)
            except (tarfile.TarError, OSError) as error:
                raise DataError(f"{path}: unreadable shard ({error})") from error
            if len(samples) != self.index.shards[shard].samples:
                raise DataError(
                    f"{path}: holds {len(samples)} samples, the index lists "
                    f"{self.index.shards[shard].samples}; rewrite it with `mint data shard`"
                )
            self._tables[shard] = list(samples.items())
        return self._tables[shard]

    def _read(self, index: int, audio: bool) -> tuple[ManifestRecord, bytes | None, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} shard samples")
        shard = bisect.bisect_right(self._starts, index) - 1
        key, members = self._members(shard)[index - self._starts[shard]]
        path = self._paths[shard]
        where = f"{path}:{key}"
        if "json" not in members:
            raise DataError(f"{where}: sample has no .json member")

        def read(offset: int, size: int) -> bytes:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read(size)

        record = parse_sample_record(read(*members["json"]), where)
        extension = record.audio.partition(".")[2]
        if audio and extension not in members:
            raise DataError(f"{where}: sample has no {record.audio} member")
        return record, read(*members[extension]) if audio else None, f"{where}.{extension}"

    def clip(self, index: int) -> Clip:
        return Clip.from_record(self._read(index, audio=False)[0])

    def load(
        self, index: int, frontend: AudioFrontend, rng: np.random.Generator | None
    ) -> tuple[Clip, np.ndarray]:
        record, audio, name = self._read(index, audio=True)
        stream = io.BytesIO(audio)
        stream.name = name
        return Clip.from_record(record), frontend.load(stream, rng=rng)

    def content_digest(self, index: int) -> str:
        """SHA-256 of the audio bytes: the same as the original file's, so a feature cache carries over."""
        return hashlib.sha256(self._read(index, audio=True)[1]).hexdigest()
