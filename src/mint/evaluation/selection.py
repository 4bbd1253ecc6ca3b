"""Which records of a manifest an evaluation runs on: file order, optional folds, an optional limit."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from mint.data.manifest import ManifestRecord, iter_manifest
from mint.errors import ConfigError, DataError


@dataclass
class Selection:
    """The records an evaluation runs on, and how many the manifest held before filtering."""

    records: list[ManifestRecord]
    total_in_manifest: int


def select_records(
    manifest: str | os.PathLike, folds: Collection[int] | None = None, limit: int | None = None
) -> Selection:
    """Records of `manifest` in file order, only those of `folds` (when given), the first `limit` of them."""
    if limit is not None and limit < 1:
        raise ConfigError(f"limit: expected a positive number of clips, got {limit}")
    records: list[ManifestRecord] = []
    total = 0
    for record in iter_manifest(manifest):
        total += 1
        if folds is not None and record.fold not in folds:
            continue
        if limit is None or len(records) < limit:
            records.append(record)
    if not records:
        detail = f" in folds {sorted(folds)}" if folds is not None else ""
        raise DataError(f"{manifest}: no records to evaluate{detail}")
    return Selection(records, total)
