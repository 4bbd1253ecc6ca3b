"""A folder per class: `ROOT/<class>/<clip>.{wav,flac,ogg,mp3}`, the class named by its folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import AUDIO_SUFFIXES, Skip
from mint.data.manifest import ManifestRecord
from mint.errors import DataError


def load_folder(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """One record per audio file directly inside a class folder; ids are `<class>/<file stem>`."""
    if audio_dir is not None:
        raise DataError(
            f"{root}: the class-folder layout takes its audio from the class folders; drop audio_dir"
        )
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder holding one sub-folder of audio files per class")
    found = False
    for class_dir in sorted(
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")
    ):
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                found = True
                yield ManifestRecord(
                    id=f"{class_dir.name}/{path.stem}",
                    audio=str(path),
                    labels=[class_dir.name],
                    split=split,
                    source="folder",
                )
    if not found:
        raise DataError(
            f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found in its sub-folders; "
            "expected ROOT/<class>/<clip>.wav"
        )
