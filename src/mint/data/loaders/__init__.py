"""Loaders that turn published dataset layouts into the project's JSONL manifest.

A loader is `load(root, audio_dir=None, split=None)` yielding `ManifestRecord`s, plus a `Skip`
for each clip whose audio it could not locate. `prepare` runs one, checks every audio file
(present; with `check_audio`, readable and of known duration) and writes the manifest; a clip
whose audio is missing or unreadable is left out and listed in the report, never fatal. A
malformed table or JSON file raises `DataError` naming the file, the row and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mint.audio.decode import audio_info
from mint.data.loaders._files import Skip
from mint.data.loaders.audiocaps import load_audiocaps
from mint.data.loaders.clotho import load_clotho
from mint.data.loaders.esc50 import load_esc10, load_esc50
from mint.data.loaders.folder import load_folder
from mint.data.loaders.jsonl import load_jsonl
from mint.data.loaders.table import load_table
from mint.data.loaders.urbansound8k import load_urbansound8k
from mint.data.loaders.wavcaps import load_wavcaps
from mint.data.manifest import ManifestRecord, write_manifest
from mint.errors import AudioError, DataError

__all__ = ["LOADERS", "PrepareReport", "Skip", "prepare"]

Loader = Callable[[Path, Path | None, str | None], Iterator[ManifestRecord | Skip]]

LOADERS: dict[str, Loader] = {
    "esc50": load_esc50,
    "esc10": load_esc10,
    "urbansound8k": load_urbansound8k,
    "audiocaps": load_audiocaps,
    "clotho": load_clotho,
    "wavcaps": load_wavcaps,
    "jsonl": load_jsonl,
    "csv": load_table,
    "folder": load_folder,
}


@dataclass
class PrepareReport:
    format: str
    root: Path
    out: Path
    written: int
    skipped: list[Skip] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, list[Skip]]:
        groups: dict[str, list[Skip]] = {}
        for skip in self.skipped:
            groups.setdefault(skip.reason, []).append(skip)
        return groups

    def summary(self, limit: int = 5) -> str:
        """Human-readable: records written, then per skip reason its count and first `limit` clips."""
        lines = [f"wrote {self.written} records to {self.out} ({self.format} from {self.root})"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} clips:")
        for reason, skips in self.skipped_by_reason().items():
            lines.append(f"  {reason}: {len(skips)}")
            for skip in skips[:limit]:
                lines.append(f"    {skip.name}" + (f" ({skip.detail})" if skip.detail else ""))
            if len(skips) > limit:
                lines.append(f"    ... and {len(skips) - limit} more")
        return "\n".join(lines)


def _in_folds(
    items: Iterable[ManifestRecord | Skip], folds: Collection[int], root: Path
) -> Iterator[ManifestRecord | Skip]:
    for item in items:
        if isinstance(item, ManifestRecord):
            if item.fold is None:
                raise DataError(
                    f"{root}: clip {item.id!r} has no fold, so folds cannot be selected "
                    "(layouts with folds: esc50, esc10, urbansound8k, or a manifest/CSV with a fold field)"
                )
            if item.fold not in folds:
                continue
        yield item


def _checked(
    items: Iterable[ManifestRecord | Skip],
    root: Path,
    shown_from: Path,
    check_audio: bool,
    skipped: list[Skip],
) -> Iterator[ManifestRecord]:
    """The records whose audio is usable; every other clip is appended to `skipped`."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Skip):
            skipped.append(item)
            continue
        if item.id in seen:
            raise DataError(f"{root}: clip id {item.id!r} occurs twice; ids must be unique in a manifest")
        seen.add(item.id)
        path = Path(item.audio)
        shown = str(path.relative_to(shown_from)) if path.is_relative_to(shown_from) else str(path)
        if not path.is_file():
            skipped.append(Skip(shown, "file not found"))
            continue
        if check_audio:
            try:
                item.duration = audio_info(path).duration
            except AudioError as error:
                skipped.append(Skip(shown, "unreadable audio", str(error).removeprefix(f"{path}: ")))
                continue
        yield item


def prepare(
    format: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    check_audio: bool = True,
    split: str | None = None,
    folds: Collection[int] | None = None,
    audio_dir: str | os.PathLike | None = None,
) -> PrepareReport:
    """Write the manifest of the dataset at `root` in layout `format` (a key of `LOADERS`) to `out`.

    `split` picks one split of layouts that ship several (AudioCaps, Clotho, a manifest or CSV
    with a split field) and is recorded on every record otherwise. `folds` keeps only those folds.
    `audio_dir` points at the audio when it is not where the layout puts it. Without
    `check_audio` files are only checked to exist, not opened, and no duration is recorded.
    """
    loader = LOADERS.get(format)
    if loader is None:
        raise DataError(f"unknown dataset format {format!r}; known formats: {', '.join(LOADERS)}")
    root = Path(root).resolve()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    audio = Path(audio_dir).resolve() if audio_dir is not None else None
    items = loader(root, audio, split)
    if folds is not None:
        items = _in_folds(items, folds, root)
    skipped: list[Skip] = []
    shown_from = audio or (root if root.is_dir() else root.parent)
    records = _checked(items, root, shown_from, check_audio, skipped)
    written = write_manifest(records, out)
    return PrepareReport(format=format, root=root, out=Path(out), written=written, skipped=skipped)
