"""UrbanSound8K (Salamon et al., 2014).

Published layout: `metadata/UrbanSound8K.csv` with columns slice_file_name, fsID, start, end,
salience, fold, classID, class, and the clips in `audio/fold<N>/<slice_file_name>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import Skip, require_folder
from mint.data.loaders._tables import find_file, read_csv
from mint.data.manifest import ManifestRecord

COLUMNS = ("slice_file_name", "fold", "classID", "class")


def load_urbansound8k(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """Every clip of the metadata table; `split`, if given, is recorded on each record."""
    table = find_file(root, ("metadata/UrbanSound8K.csv", "UrbanSound8K.csv"), "UrbanSound8K metadata CSV")
    base = root
    if root.is_file():
        base = table.parent.parent if table.parent.name == "metadata" else table.parent
    audio = require_folder(audio_dir or base / "audio", "UrbanSound8K audio folder")
    seen: set[str] = set()
    for row in read_csv(table, COLUMNS):
        filename = row.text("slice_file_name")
        if filename in seen:
            raise row.error(f"file {filename!r} is listed twice")
        seen.add(filename)
        fold = row.integer("fold")
        yield ManifestRecord(
            id=Path(filename).stem,
            audio=str(audio / f"fold{fold}" / filename),
            labels=[row.text("class")],
            fold=fold,
            split=split,
            source="urbansound8k",
        )
