"""A generic CSV: an `audio` column plus a `caption` and/or `label` column.

Optional columns: `id`, `fold`, `split`. Rows that name the same audio file are one clip holding
every caption and label of those rows, so a table with one caption per row (the AudioCaps way)
and a table with one row per clip read the same. Relative audio paths are taken from the audio
folder (default: the CSV's folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import Skip
from mint.data.loaders._tables import read_csv
from mint.data.manifest import ManifestRecord
from mint.errors import DataError


def load_table(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """One record per distinct audio path; with `split` and a `split` column, only that split."""
    if not root.is_file():
        raise DataError(f"{root}: expected a CSV file with columns audio and caption and/or label")
    base = audio_dir or root.parent
    clips: dict[str, ManifestRecord] = {}
    ids: set[str] = set()
    for row in read_csv(root, ("audio",), one_of=("caption", "label")):
        row_split = row.optional("split") or split
        if split is not None and row_split != split:
            continue
        audio = row.text("audio")
        record = clips.get(audio)
        if record is None:
            path = Path(audio) if Path(audio).is_absolute() else base / audio
            clip_id = row.optional("id") or Path(audio).with_suffix("").as_posix()
            if clip_id in ids:
                raise row.error(f"id {clip_id!r} is used by two different audio files")
            ids.add(clip_id)
            fold = row.integer("fold") if row.optional("fold") else None
            record = ManifestRecord(id=clip_id, audio=str(path), fold=fold, split=row_split, source="csv")
            clips[audio] = record
        caption = row.optional("caption")
        label = row.optional("label")
        if caption is None and label is None:
            raise row.error("both 'caption' and 'label' are empty")
        if caption is not None:
            record.captions.append(caption)
        if label is not None and label not in record.labels:
            record.labels.append(label)
    yield from clips.values()
