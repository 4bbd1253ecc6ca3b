"""AudioCaps (Kim et al., 2019).

Published layout: `train.csv`, `val.csv`, `test.csv` (at the root or under `dataset/`) with
columns audiocap_id, youtube_id, start_time, caption, one row per caption (the test set has five
per clip). The audio is fetched from YouTube by each user, so files are matched by YouTube id in
the audio folder (default `<root>/audio`, searched recursively), under any of these names, with a
.wav, .flac, .ogg or .mp3 extension: `{id}_{start}`, `Y{id}_{start}`, the AudioSet form
`{id}_{start}.000_{end}.000` (with or without the `Y`), `{id}` or `Y{id}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import AudioIndex, Skip
from mint.data.loaders._tables import read_csv
from mint.data.manifest import ManifestRecord
from mint.errors import DataError

COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
SPLITS = ("train", "val", "test")
# AudioCaps clips are the 10-second AudioSet segments starting at start_time.
_CLIP_SECONDS = 10


def _tables(root: Path, split: str | None) -> list[Path]:
    if root.is_file():
        return [root]
    names = [f"{split}.csv"] if split else [f"{name}.csv" for name in SPLITS]
    tables = [folder / name for folder in (root, root / "dataset") for name in names]
    found = [table for table in tables if table.is_file()]
    if not found:
        raise DataError(f"{root}: no AudioCaps caption table found; looked for {', '.join(map(str, tables))}")
    return found


def _start_text(start: float) -> str:
    return str(int(start)) if start.is_integer() else str(start)


def _file_stems(youtube_id: str, start: float) -> list[str]:
    start_text = _start_text(start)
    segment = f"{start:.3f}_{start + _CLIP_SECONDS:.3f}"
    return [
        f"{youtube_id}_{start_text}",
        f"Y{youtube_id}_{start_text}",
        f"{youtube_id}_{segment}",
        f"Y{youtube_id}_{segment}",
        youtube_id,
        f"Y{youtube_id}",
    ]


def load_audiocaps(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """One record per clip (youtube_id, start_time) holding all of its captions in table order."""
    tables = _tables(root, split)
    index = AudioIndex.scan(audio_dir or (root if root.is_dir() else root.parent) / "audio")
    for table in tables:
        table_split = split or table.stem
        clips: dict[tuple[str, float], list[str]] = {}
        for row in read_csv(table, COLUMNS):
            key = (row.text("youtube_id"), row.number("start_time"))
            clips.setdefault(key, []).append(row.text("caption"))
        for (youtube_id, start), captions in clips.items():
            clip_id = f"{youtube_id}_{_start_text(start)}"
            path = index.by_stem(_file_stems(youtube_id, start), prefer=table_split)
            if path is None:
                yield Skip(clip_id, "no audio file for id", f"looked under {index.folder}")
                continue
            yield ManifestRecord(
                id=clip_id,
                audio=str(path),
                captions=captions,
                split=table_split,
                source="audiocaps",
            )
