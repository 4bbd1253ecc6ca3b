"""Building an audio index incrementally: `build_index` walks the folder again on every call.

* a file whose size and mtime match its row is unchanged and not read at all;
* a file whose size or mtime changed is hashed; the same content (a copy or a `touch`) only updates
  the row's size and mtime, other content is embedded again;
* new files are embedded; rows of files no longer in the folder are deleted;
* files that cannot be read or decoded are skipped and reported (a stale row of theirs is deleted);
* a file longer than the model's clip is embedded as its windows (`model.windowing`), each with its time
  span; a search finds it by its best window and says which.

Embedding is committed batch by batch, so an interrupted build (even `kill -9`) keeps what it finished
and the next call goes on from there (`mint.inference.index.IndexWriter`). Audio is decoded
on worker threads, a bounded number of clips ahead (`mint.inference.embedding.AudioStream`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from mint.data.manifest import ManifestRecord
from mint.errors import DataError, MintError
from mint.inference.embedding import AudioStream
from mint.inference.index import ClipFile, IndexWriter
from mint.storage import sha256_file

if TYPE_CHECKING:
    from mint.inference.pipeline import MintPipeline

logger = logging.getLogger(__name__)

# Files the walk considers audio; their content is still sniffed when decoding.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".rf64"})


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


def audio_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of the files under `root` with an audio suffix, sorted."""
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                path = Path(directory) / name
                yield path.relative_to(root).as_posix(), path


def _classify_files(
    writer: IndexWriter, root: Path, report: BuildReport
) -> tuple[list[ClipFile], set[str], set[str]]:
    """Files to embed, the relative paths seen, and those whose stale row must go (unreadable now)."""
    known = writer.known()
    pending: list[ClipFile] = []
    seen: set[str] = set()
    unreadable: set[str] = set()
    touched: list[ClipFile] = []
    for relative, path in audio_files(root):
        seen.add(relative)
        try:
            stat = path.stat()
            row = known.get(relative)
            if row is not None and (row.size, row.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                report.unchanged += 1
                continue
            digest = sha256_file(path)
        except OSError as error:
            report.skipped.append(SkippedFile(relative, f"cannot be read ({error.strerror})"))
            unreadable.add(relative)
            continue
        file = ClipFile(relative, stat.st_size, stat.st_mtime_ns, digest)
        if row is not None and row.sha256 == digest:
            touched.append(file)
            report.unchanged += 1
            continue
        pending.append(file)
    writer.touch(touched)
    return pending, seen, unreadable


def _is_long(path: Path, pipeline: MintPipeline) -> bool:
    """Whether the file is longer than the model's clip (a header it cannot read: no, so the batched
    stream reports it)."""
    try:
        return pipeline.frontend.reader(path).total > pipeline.frontend.max_samples
    except (MintError, OSError):
        return False


def _embed(
    writer: IndexWriter,
    pipeline: MintPipeline,
    root: Path,
    pending: list[ClipFile],
    report: BuildReport,
    workers: int,
    progress: bool,
) -> set[str]:
    """Embed `pending`, upserting batch by batch (a file longer than the model's clip on its own, as its
    windows); returns the relative paths that failed to decode."""
    known = set(writer.known())
    long, short = [], []
    for file in pending:
        (long if _is_long(root / file.path, pipeline) else short).append(file)
    records = [ManifestRecord(id=item.path, audio=str(root / item.path)) for item in short]
    stream = AudioStream(pipeline.model, records, pipeline.batch_size, workers, progress, "index")
    with torch.no_grad():
        for batch in stream:
            embeddings = pipeline.model.audio_embeddings(batch.audio).float().cpu().numpy()
            files = [short[item_index] for item_index in batch.indices]
            writer.upsert(files, embeddings, [[(0.0, seconds)] for seconds in batch.seconds])
            report.updated += sum(file.path in known for file in files)
            report.added += sum(file.path not in known for file in files)
    failed = set()
    for clip in stream.skipped:
        report.skipped.append(SkippedFile(clip.id, clip.detail or clip.reason))
        failed.add(clip.id)
    for file in tqdm(long, desc="index (long files)", unit="file", disable=not progress or not long):
        try:
            windows = pipeline.embed_windows(root / file.path)
        except (MintError, OSError) as error:
            report.skipped.append(SkippedFile(file.path, str(error)))
            failed.add(file.path)
            continue
        writer.upsert(
            [file],
            [windows.embeddings],
            [list(zip(windows.starts.tolist(), windows.ends.tolist(), strict=True))],
        )
        report.updated += file.path in known
        report.added += file.path not in known
    return failed


def build_index(
    pipeline: MintPipeline,
    audio_dir: str | os.PathLike,
    index_path: str | os.PathLike,
    workers: int = 2,
    rebuild: bool = False,
    progress: bool = True,
    vectors: str | None = None,
) -> BuildReport:
    """Bring the index at `index_path` up to date with the audio under `audio_dir` (see the module doc);
    `rebuild` starts it afresh (another folder, model or vector store); `vectors` is where a new index keeps
    its vectors (`mint.inference.stores`; None: the files beside it)."""
    started = time.perf_counter()
    root = Path(audio_dir).resolve()
    if not root.is_dir():
        raise DataError(f"{audio_dir}: not a folder; expected the folder of audio files to index")
    report = BuildReport()
    config = pipeline.model.config
    with IndexWriter.open(
        index_path, root, pipeline.fingerprint, config.bridge.num_queries, config.embed_dim, rebuild, vectors
    ) as writer:
        pending, seen, unreadable = _classify_files(writer, root, report)
        unreadable |= _embed(writer, pipeline, root, pending, report, workers, progress)
        gone = [relative for relative in writer.known() if relative not in seen or relative in unreadable]
        writer.delete(gone)
        report.removed = sum(relative not in seen for relative in gone)
        report.total = writer.count()
        writer.refresh_store()
    report.seconds = time.perf_counter() - started
    for skipped in report.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    return report
