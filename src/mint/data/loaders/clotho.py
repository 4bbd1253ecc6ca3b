"""Clotho (Drossos et al., 2020).

Published layout: `clotho_captions_<split>.csv` (split: development, validation, evaluation)
with columns file_name, caption_1 .. caption_5, and the audio extracted from
`clotho_audio_<split>.7z` into a folder named after the split. Files are found by name anywhere
under the audio folder (default: the root), preferring the folder named after the split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import AudioIndex, Skip
from mint.data.loaders._tables import read_csv
from mint.data.manifest import ManifestRecord
from mint.errors import DataError

_PREFIX = "clotho_captions_"
_CAPTION_COLUMN = re.compile(r"caption_(\d+)")


def _tables(root: Path, split: str | None) -> list[tuple[Path, str]]:
    if root.is_file():
        return [(root, split or root.stem.removeprefix(_PREFIX))]
    pattern = f"{_PREFIX}{split}.csv" if split else f"{_PREFIX}*.csv"
    tables = sorted(root.glob(pattern))
    if not tables:
        raise DataError(f"{root}: no Clotho caption table found; looked for {pattern}")
    return [(table, table.stem.removeprefix(_PREFIX)) for table in tables]


def load_clotho(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """One record per row, with the non-empty caption_N cells in column order."""
    tables = _tables(root, split)
    index = AudioIndex.scan(audio_dir or (root if root.is_dir() else root.parent))
    for table, table_split in tables:
        seen: set[str] = set()
        for row in read_csv(table, ("file_name", "caption_1")):
            numbered = sorted(
                (int(match.group(1)), column)
                for column in row.values
                if (match := _CAPTION_COLUMN.fullmatch(column))
            )
            captions = [caption for _, column in numbered if (caption := row.optional(column))]
            if not captions:
                raise row.error("every caption_N column is empty")
            name = row.text("file_name")
            if name in seen:
                raise row.error(f"file {name!r} is listed twice")
            seen.add(name)
            path = index.by_name(name, prefer=table_split)
            if path is None:
                yield Skip(name, "file not found", f"not under {index.folder}")
                continue
            yield ManifestRecord(
                id=Path(name).stem,
                audio=str(path),
                captions=captions,
                split=table_split,
                source="clotho",
            )
