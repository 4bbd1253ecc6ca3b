"""Building an audio index incrementally: `build_index` walks the folder again on every call.

* a file whose size and mtime match its row is unchanged and not read at all;
* a file whose size or mtime changed is hashed; the same content (a copy or a `touch`) only updates
  the row's size and mtime, other content is embedded again;
* new files are embedded; rows of files no longer in the folder are deleted;
* files that cannot be read or decoded are skipped and reported (a stale row of theirs is deleted).

Embedding is committed batch by batch, so an interrupted build keeps what it finished. Audio is decoded
on worker threads, a bounded number of clips ahead (`mint.inference.embedding.AudioStream`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mint.data.manifest import ManifestRecord
from mint.errors import ConfigError, DataError
from mint.inference.embedding import AudioStream
from mint.inference.index import INDEX_FORMAT, SCHEMA, connect, read_info
from mint.modeling import MintModel

if TYPE_CHECKING:
    from mint.inference.pipeline import MintPipeline

logger = logging.getLogger(__name__)

# Files the walk considers audio; their content is still sniffed when decoding.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".rf64"})
_HASH_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class BuildReport:
    """What one `build_index` call did; `total` is the number of clips in the index afterwards."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    total: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.total} clips indexed: {self.added} added, {self.updated} re-embedded, "
            f"{self.unchanged} unchanged, {self.removed} removed, {len(self.skipped)} skipped "
            f"({self.seconds:.1f} s)"
        )


@dataclass(frozen=True)
class _Pending:
    relative: str
    size: int
    mtime_ns: int
    sha256: str


def audio_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of the files under `root` with an audio suffix, sorted."""
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                path = Path(directory) / name
                yield path.relative_to(root).as_posix(), path


def _prepare(
    connection: sqlite3.Connection, path: Path, root: Path, model: MintModel, fingerprint: str, rebuild: bool
) -> None:
    info = read_info(connection, path)  # before creating tables, so another program's database is refused
    connection.executescript(SCHEMA)
    if info is not None and not rebuild:
        if info.root != root:
            raise ConfigError(
                f"{path}: the index is of the folder {info.root}, not {root}; use another --index, or --rebuild"
            )
        if info.fingerprint != fingerprint:
            raise ConfigError(
                f"{path}: the index was built with another model (fingerprint {info.fingerprint[:12]}, "
                f"this model's is {fingerprint[:12]}); use another --index, or --rebuild to re-embed everything"
            )
        return
    meta = {
        "format": str(INDEX_FORMAT),
        "root": str(root),
        "fingerprint": fingerprint,
        "num_queries": str(model.config.bridge.num_queries),
        "embed_dim": str(model.config.embed_dim),
    }
    with connection:
        connection.execute("DELETE FROM clips")
        connection.execute("DELETE FROM meta")
        connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())


def _classify_files(
    connection: sqlite3.Connection, root: Path, report: BuildReport
) -> tuple[list[_Pending], set[str], set[str]]:
    """Files to embed, the relative paths seen, and those whose stale row must go (unreadable now)."""
    known = {row[0]: row[1:] for row in connection.execute("SELECT path, size, mtime_ns, sha256 FROM clips")}
    pending: list[_Pending] = []
    seen: set[str] = set()
    unreadable: set[str] = set()
    touched: list[tuple[int, int, str]] = []
    for relative, path in audio_files(root):
        seen.add(relative)
        try:
            stat = path.stat()
            row = known.get(relative)
            if row is not None and row[:2] == (stat.st_size, stat.st_mtime_ns):
                report.unchanged += 1
                continue
            digest = file_sha256(path)
        except OSError as error:
            report.skipped.append(SkippedFile(relative, f"cannot be read ({error.strerror})"))
            unreadable.add(relative)
            continue
        if row is not None and row[2] == digest:
            touched.append((stat.st_size, stat.st_mtime_ns, relative))
            report.unchanged += 1
            continue
        pending.append(_Pending(relative, stat.st_size, stat.st_mtime_ns, digest))
    with connection:
        connection.executemany("UPDATE clips SET size = ?, mtime_ns = ? WHERE path = ?", touched)
    return pending, seen, unreadable


def _embed(
    connection: sqlite3.Connection,
    pipeline: MintPipeline,
    root: Path,
    pending: list[_Pending],
    report: BuildReport,
    workers: int,
    progress: bool,
) -> set[str]:
    """Embed `pending` in batches, upserting each; returns the relative paths that failed to decode."""
    known = {row[0] for row in connection.execute("SELECT path FROM clips")}
    records = [ManifestRecord(id=item.relative, audio=str(root / item.relative)) for item in pending]
    stream = AudioStream(pipeline.model, records, pipeline.batch_size, workers, progress, "index")
    with torch.no_grad():
        for batch in stream:
            embeddings = pipeline.model.audio_embeddings(batch.audio).to(torch.float16).cpu().numpy()
            rows = []
            for item_index, embedding in zip(batch.indices, embeddings, strict=True):
                item = pending[item_index]
                rows.append((item.relative, item.size, item.mtime_ns, item.sha256, embedding.tobytes()))
                if item.relative in known:
                    report.updated += 1
                else:
                    report.added += 1
            with connection:
                connection.executemany(
                    "INSERT INTO clips (path, size, mtime_ns, sha256, embedding) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                    "sha256 = excluded.sha256, embedding = excluded.embedding",
                    rows,
                )
    failed = set()
    for clip in stream.skipped:
        report.skipped.append(SkippedFile(clip.id, clip.detail or clip.reason))
        failed.add(clip.id)
    return failed


def build_index(
    pipeline: MintPipeline,
    audio_dir: str | os.PathLike,
    index_path: str | os.PathLike,
    workers: int = 2,
    rebuild: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Bring the index at `index_path` up to date with the audio under `audio_dir` (see the module doc);
    `rebuild` starts it afresh (another folder or model)."""
    started = time.perf_counter()
    root = Path(audio_dir).resolve()
    if not root.is_dir():
        raise DataError(f"{audio_dir}: not a folder; expected the folder of audio files to index")
    path = Path(index_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = BuildReport()
    with closing(connect(path, readonly=False)) as connection:
        _prepare(connection, path, root, pipeline.model, pipeline.fingerprint, rebuild)
        pending, seen, unreadable = _classify_files(connection, root, report)
        unreadable |= _embed(connection, pipeline, root, pending, report, workers, progress)
        stored = [row[0] for row in connection.execute("SELECT path FROM clips")]
        gone = [relative for relative in stored if relative not in seen or relative in unreadable]
        with connection:
            connection.executemany("DELETE FROM clips WHERE path = ?", [(relative,) for relative in gone])
        report.removed = sum(relative not in seen for relative in gone)
        report.total = int(connection.execute("SELECT COUNT(*) FROM clips").fetchone()[0])
    report.seconds = time.perf_counter() - started
    for skipped in report.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    return report
