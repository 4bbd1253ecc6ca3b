"""Finding the audio file of a clip.

Published caption sets (AudioCaps, WavCaps, Clotho) ship text only; users fetch the audio
themselves and name the files in several ways, so clips are matched to files through an index of
the audio folder built once, not by trying paths per clip.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mint.errors import DataError

# Order of preference when one clip exists in several formats: lossless first.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class Skip:
    """A clip left out of a manifest: `name` says which, `reason` is a short category."""

    name: str
    reason: str
    detail: str = ""


def strip_audio_suffix(name: str) -> str:
    stem, suffix = os.path.splitext(name)
    return stem if suffix.lower() in AUDIO_SUFFIXES else name


def require_folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(
            f"{path}: {what} not found (give the audio folder explicitly with audio_dir / --audio-dir)"
        )
    return path


class AudioIndex:
    """Audio files under a folder, looked up by file name or by name without extension."""

    def __init__(self, folder: Path, files: Iterable[Path]) -> None:
        self.folder = folder
        self._by_name: dict[str, list[Path]] = defaultdict(list)
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        rank = {suffix: index for index, suffix in enumerate(AUDIO_SUFFIXES)}
        for path in sorted(files, key=lambda p: (rank[p.suffix.lower()], p)):
            self._by_name[path.name].append(path)
            self._by_stem[path.stem].append(path)

    @classmethod
    def scan(cls, folder: Path) -> AudioIndex:
        """Walk `folder` recursively for files with an audio suffix."""
        require_folder(folder, "audio folder")
        files = [
            Path(directory) / name
            for directory, _, names in os.walk(folder)
            for name in names
            if os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES
        ]
        return cls(folder, files)

    @staticmethod
    def _pick(paths: list[Path], prefer: str | None) -> Path:
        # Several files of one name sit in different subfolders (train/, val/, a WavCaps subset):
        # take the one under a folder named like the split or subset being read.
        if prefer is not None:
            for path in paths:
                if prefer in path.parts[:-1]:
                    return path
        return paths[0]

    def by_name(self, name: str, prefer: str | None = None) -> Path | None:
        direct = self.folder / name
        if direct.is_file():
            return direct
        paths = self._by_name.get(Path(name).name)
        return self._pick(paths, prefer) if paths else None

    def by_stem(self, stems: Iterable[str], prefer: str | None = None) -> Path | None:
        """The file for the first of `stems` that has one."""
        for stem in stems:
            paths = self._by_stem.get(stem)
            if paths:
                return self._pick(paths, prefer)
        return None
