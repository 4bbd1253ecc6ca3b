"""WavCaps (Mei et al., 2023).

Published layout: one JSON file per source (`as_final.json`, `bbc_final.json`, `fsd_final.json`,
`sb_final.json`), each `{"data": [{"id": ..., "caption": ..., ...}]}`; older entries carry a raw
`description` instead of a `caption`. The released `audio` / `wav_path` fields are often a
placeholder, so a clip's file is that path when it exists and otherwise the file named by its id
(`Y7fmOlUlwoNg.wav` -> `Y7fmOlUlwoNg.flac`) anywhere under the audio folder (default: the root).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import AudioIndex, Skip, strip_audio_suffix
from mint.data.loaders._tables import read_json
from mint.data.manifest import ManifestRecord
from mint.errors import DataError

_EXPECTED = "expected fields: id, caption or description, optionally audio or wav_path"


def _json_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(root.rglob("*.json")) if root.is_dir() else []
    if not files:
        raise DataError(f"{root}: no WavCaps JSON file found")
    return files


def _entries(path: Path) -> list[object]:
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f'{path}: expected a JSON object {{"data": [...]}} holding a list of entries')
    return document["data"]


def _text_field(entry: dict, keys: tuple[str, ...], where: str) -> str:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise DataError(f"{where}: no non-empty {' or '.join(repr(key) for key in keys)} field ({_EXPECTED})")


def load_wavcaps(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """One record per entry; `split`, if given, is recorded on each record."""
    files = _json_files(root)
    audio_root = audio_dir or (root if root.is_dir() else root.parent)
    index = AudioIndex.scan(audio_root)
    for path in files:
        seen: set[str] = set()
        for number, entry in enumerate(_entries(path)):
            where = f"{path}, entry {number}"
            if not isinstance(entry, dict):
                raise DataError(f"{where}: expected a JSON object ({_EXPECTED})")
            clip_id = strip_audio_suffix(_text_field(entry, ("id",), where))
            caption = _text_field(entry, ("caption", "description"), where)
            if clip_id in seen:
                raise DataError(f"{where}: id {clip_id!r} appears twice")
            seen.add(clip_id)
            audio = None
            for key in ("audio", "wav_path"):
                given = entry.get(key)
                if isinstance(given, str) and given and (audio_root / given).is_file():
                    audio = audio_root / given
                    break
            # Files of one source are usually kept in a folder named like its JSON's folder.
            audio = audio or index.by_stem([clip_id], prefer=path.parent.name)
            if audio is None:
                yield Skip(clip_id, "no audio file for id", f"looked under {audio_root}")
                continue
            duration = entry.get("duration")
            yield ManifestRecord(
                id=clip_id,
                audio=str(audio),
                captions=[caption],
                split=split,
                duration=float(duration) if isinstance(duration, (int, float)) else None,
                source="wavcaps",
            )
