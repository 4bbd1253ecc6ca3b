"""ESC-50 and ESC-10 (Piczak, 2015).

Published layout: `meta/esc50.csv` with columns filename, fold, target, category (and esc10,
src_file, take) beside `audio/<filename>`. The standalone ESC-10 release, as kept in
`shared/data/esc10`, puts the same columns in `meta.csv`; both are read as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import Skip, require_folder
from mint.data.loaders._tables import find_file, read_csv
from mint.data.manifest import ManifestRecord

COLUMNS = ("filename", "fold", "target", "category")
_TABLES = ("meta/esc50.csv", "meta.csv")


def _load(
    root: Path, audio_dir: Path | None, split: str | None, *, esc10_only: bool, source: str
) -> Iterator[ManifestRecord | Skip]:
    table = find_file(root, _TABLES, "ESC-50 metadata CSV")
    base = root
    if root.is_file():
        # The table was given directly (meta/esc50.csv): the audio folder sits beside meta/.
        base = table.parent.parent if table.parent.name == "meta" else table.parent
    audio = require_folder(audio_dir or base / "audio", "ESC-50 audio folder")
    seen: set[str] = set()
    for row in read_csv(table, COLUMNS):
        if esc10_only and "esc10" in row.values:
            flag = row.text("esc10").lower()
            if flag not in ("true", "false"):
                raise row.error(f"column 'esc10' must be True or False, got {flag!r}")
            if flag == "false":
                continue
        filename = row.text("filename")
        if filename in seen:
            raise row.error(f"file {filename!r} is listed twice")
        seen.add(filename)
        yield ManifestRecord(
            id=Path(filename).stem,
            audio=str(audio / filename),
            labels=[row.text("category")],
            fold=row.integer("fold"),
            split=split,
            source=source,
        )


def load_esc50(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """Every clip of the table; `split`, if given, is recorded on each record."""
    return _load(root, audio_dir, split, esc10_only=False, source="esc50")


def load_esc10(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """The ESC-10 subset: rows flagged in the `esc10` column, or every row of a table without it."""
    return _load(root, audio_dir, split, esc10_only=True, source="esc10")
