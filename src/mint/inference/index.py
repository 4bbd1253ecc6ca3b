"""The audio index: an audio folder's embeddings in one SQLite file (built by `mint.inference.indexing`).

Table `clips` has one row per audio file: its path relative to the indexed folder (with "/"), size,
mtime (nanoseconds), SHA-256 and its per-query audio embeddings `[Nq, E]` as a float16 BLOB (16 KiB per
clip at 32 queries x 256). Table `meta` records the folder, the embedding shape and the fingerprint of
the model that embedded it (its config and own weights): searching or updating an index with another
model is refused, since the embeddings would not be comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mint.config import config_to_dict
from mint.errors import ConfigError, DataError
from mint.modeling import MintModel

INDEX_FORMAT = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    embedding BLOB NOT NULL
);
"""


def model_fingerprint(model: MintModel) -> str:
    """SHA-256 over the model's config and its own (trainable) weights, in a fixed order."""
    digest = hashlib.sha256(json.dumps(config_to_dict(model.config), sort_keys=True).encode())
    for name, tensor in sorted(model.trainable_state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class IndexInfo:
    root: Path
    fingerprint: str
    num_queries: int
    embed_dim: int


@dataclass(frozen=True)
class IndexEntry:
    id: int
    path: str  # relative to the index root, with "/" separators


class AudioIndex:
    """An index file opened for reading; `AudioIndex.open(path)` checks that it is one."""

    def __init__(self, path: Path, info: IndexInfo) -> None:
        self.path = path
        self.info = info

    @classmethod
    def open(cls, path: str | os.PathLike) -> AudioIndex:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"{path}: no index here; build one with `mint index build AUDIO_DIR --index {path}`"
            )
        with closing(connect(path, readonly=True)) as connection:
            info = read_info(connection, path)
        if info is None:
            raise DataError(f"{path}: an empty index (never built); run `mint index build` first")
        return cls(path, info)

    @property
    def root(self) -> Path:
        return self.info.root

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with closing(connect(self.path, readonly=True)) as connection:
            yield connection

    def count(self) -> int:
        with self.connection() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM clips").fetchone()[0])

    def check_model(self, fingerprint: str) -> None:
        if fingerprint != self.info.fingerprint:
            raise ConfigError(
                f"{self.path}: the index was built with another model (fingerprint "
                f"{self.info.fingerprint[:12]}, this model's is {fingerprint[:12]}); search it with the "
                "model that built it, or rebuild it with `mint index build --rebuild`"
            )

    def scan(self, chunk_rows: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids [n], float16 embeddings [n, Nq, E]) in id order, `chunk_rows` rows at a time."""
        shape = (self.info.num_queries, self.info.embed_dim)
        with self.connection() as connection:
            cursor = connection.execute("SELECT id, embedding FROM clips ORDER BY id")
            while rows := cursor.fetchmany(chunk_rows):
                ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
                blob = b"".join(row[1] for row in rows)
                yield ids, np.frombuffer(blob, dtype=np.float16).reshape(len(rows), *shape)

    def entries(self, ids: Sequence[int]) -> dict[int, IndexEntry]:
        found: dict[int, IndexEntry] = {}
        with self.connection() as connection:
            for start in range(0, len(ids), 500):
                part = [int(value) for value in ids[start : start + 500]]
                marks = ",".join("?" * len(part))
                for row in connection.execute(f"SELECT id, path FROM clips WHERE id IN ({marks})", part):
                    found[row[0]] = IndexEntry(row[0], row[1])
        return found

    def audio_path(self, entry: IndexEntry) -> Path:
        return self.root / entry.path


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        else:
            connection = sqlite3.connect(path)
        connection.execute("SELECT name FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as error:
        raise DataError(f"{path}: not a mint index (SQLite says: {error})") from None
    return connection


def read_info(connection: sqlite3.Connection, path: Path) -> IndexInfo | None:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"meta", "clips"} <= tables:
        if tables:
            raise DataError(f"{path}: an SQLite file but not a mint index (tables {sorted(tables)})")
        return None
    meta = dict(connection.execute("SELECT key, value FROM meta"))
    if not meta:
        return None
    if meta.get("format") != str(INDEX_FORMAT):
        raise DataError(f"{path}: index format {meta.get('format')!r}; this version reads {INDEX_FORMAT}")
    return IndexInfo(
        Path(meta["root"]), meta["fingerprint"], int(meta["num_queries"]), int(meta["embed_dim"])
    )
