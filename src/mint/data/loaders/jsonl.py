"""The project's own JSONL manifest (see `mint.data.manifest`), re-validated and re-checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mint.data.loaders._files import Skip
from mint.data.manifest import ManifestRecord, iter_manifest
from mint.errors import DataError


def load_jsonl(
    root: Path, audio_dir: Path | None = None, split: str | None = None
) -> Iterator[ManifestRecord | Skip]:
    """Records of the manifest at `root`, relative audio paths resolved against its folder.

    With `split`, only records whose `split` field equals it are kept.
    """
    if audio_dir is not None:
        raise DataError(
            f"{root}: a JSONL manifest resolves audio paths against its own folder; drop audio_dir"
        )
    for record in iter_manifest(root):
        if split is None or record.split == split:
            yield record
