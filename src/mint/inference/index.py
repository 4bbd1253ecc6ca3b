"""The audio index: an audio folder's embeddings, searchable at millions of clips (built by
`mint.inference.indexing`, searched by `mint.inference.search`).

`PATH` is an SQLite file, the metadata store. Table `clips` has one row per audio file: its path relative
to the indexed folder (with "/"), size, mtime (nanoseconds), SHA-256 and the slot of its embeddings in
the vector files. Table `meta` records the folder, the embedding shape, the fingerprint of the model that
embedded it (its config and own weights: searching or updating an index with another model is refused,
since the embeddings would not be comparable), the committed slot count and a generation that every
change of embeddings moves on.

`PATH.vectors/` holds the query embeddings compressed (`mint.inference.vectors`, 8.6 KiB per clip at
32 queries x 256) and the candidate index over their means (`mint.inference.candidates`). A replaced or
deleted clip's old slot stays in the files unused until `--rebuild`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mint.config import config_to_dict
from mint.errors import ConfigError, DataError
from mint.inference.candidates import IVF_MIN_CLIPS
from mint.inference.stores import LOCAL, VectorStore, open_store
from mint.modeling import MintModel

INDEX_FORMAT = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS windows (
    slot INTEGER PRIMARY KEY,
    clip INTEGER NOT NULL,
    start REAL NOT NULL,
    end REAL
);
CREATE INDEX IF NOT EXISTS windows_by_clip ON windows (clip);
"""
_IN_CHUNK = 500  # SQLite's default limit on bound parameters is 999


# Settings that change how a model generates or re-ranks, never the vectors an index holds: calibrating the
# re-ranking weight or giving a question more windows must not make an index refuse its own model.
_NOT_IN_VECTORS = ("rerank_weight", "llm", "max_instruction_length")
_WINDOWING_NOT_IN_VECTORS = ("prompt_budget", "question_windows", "positions")


def model_fingerprint(model: MintModel) -> str:
    """SHA-256 over what an index's vectors depend on: the model's config (less `_NOT_IN_VECTORS`) and its
    own (trainable) weights, in a fixed order."""
    config = config_to_dict(model.config)
    for key in _NOT_IN_VECTORS:
        config.pop(key, None)
    for key in _WINDOWING_NOT_IN_VECTORS:
        config["windowing"].pop(key, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
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
    vectors: str = LOCAL  # where the vectors are: LOCAL (the files beside the index) or a vector database URL
    created: str = ""  # a token new at every (re)build: an open index that sees another one reopens


@dataclass(frozen=True)
class IndexEntry:
    id: int
    path: str  # relative to the index root, with "/" separators


@dataclass(frozen=True)
class ClipWindow:
    """Which clip a stored embedding set belongs to, and the part of it (seconds; `end` None: all of it)."""

    clip: int
    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class ClipFile:
    """What the index records of a file besides its embeddings (to tell later whether it changed)."""

    path: str  # relative to the index root, with "/" separators
    size: int
    mtime_ns: int
    sha256: str


def vector_folder(path: Path) -> Path:
    """The folder beside the SQLite file that holds its vectors and candidate index."""
    return path.with_name(path.name + ".vectors")


def _meta_int(connection: sqlite3.Connection, key: str) -> int:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _live_slots(connection: sqlite3.Connection) -> np.ndarray:
    return np.array([row[0] for row in connection.execute("SELECT slot FROM windows")], dtype=np.int64)


def _in_chunks(values: Sequence) -> Iterator[tuple[str, list]]:
    """(placeholders, values) for `... IN (placeholders)` queries over `values`, a bounded number at a time."""
    for start in range(0, len(values), _IN_CHUNK):
        part = list(values[start : start + _IN_CHUNK])
        yield ",".join("?" * len(part)), part


class AudioIndex:
    """An index opened for reading; `AudioIndex.open(path)` checks that it is one.

    The SQLite file holds the clips (path, file facts, vector slot) and the index facts; the vectors are in
    a vector store (`mint.inference.stores`), brought up to date with the rows when it is searched.
    """

    def __init__(self, path: Path, info: IndexInfo, ivf_min_clips: int = IVF_MIN_CLIPS) -> None:
        self.path = path
        self.info = info
        self.ivf_min_clips = ivf_min_clips
        self.store = self._open_store()
        self._generation = -1  # the generation the store was last refreshed to
        self._lock = threading.Lock()  # a server's searches share the store; a refresh changes it

    def _open_store(self) -> VectorStore:
        info = self.info
        return open_store(
            info.vectors, vector_folder(self.path), info.num_queries, info.embed_dim, self.ivf_min_clips
        )

    @classmethod
    def open(cls, path: str | os.PathLike, ivf_min_clips: int = IVF_MIN_CLIPS) -> AudioIndex:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"{path}: no index here; build one with `mint index build AUDIO_DIR --index {path}`"
            )
        with closing(connect(path, readonly=True)) as connection:
            info = read_info(connection, path)
        if info is None:
            raise DataError(f"{path}: an empty index (never built); run `mint index build` first")
        return cls(path, info, ivf_min_clips)

    @property
    def root(self) -> Path:
        return self.info.root

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> AudioIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with closing(connect(self.path, readonly=True)) as connection:
            yield connection

    def count(self) -> int:
        with self.connection() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM clips").fetchone()[0])

    def check_model(self, fingerprint: str) -> None:
        self.refresh()
        if fingerprint != self.info.fingerprint:
            raise ConfigError(
                f"{self.path}: the index was built with another model (fingerprint "
                f"{self.info.fingerprint[:12]}, this model's is {fingerprint[:12]}); search it with the "
                "model that built it, or rebuild it with `mint index build --rebuild`"
            )

    def refresh(self) -> None:
        """Bring the store's derived state (the built-in candidate index) up to the committed clips; an
        index rebuilt since it was opened (another folder, model or store, new vector files) is opened
        again."""
        with self._lock, self.connection() as connection:
            info = read_info(connection, self.path)
            if info is None:
                raise DataError(f"{self.path}: the index was emptied; run `mint index build` again")
            if info.created != self.info.created:
                self.store.close()
                self.info = info
                self.store = self._open_store()
                self._generation = -1
            generation = _meta_int(connection, "generation")
            if generation != self._generation:
                self.store.refresh(_live_slots(connection), generation)
                self._generation = generation

    def search_slots(
        self, query: np.ndarray, count: int, candidates: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The store's (slots, scores) for `query` `[Q, E]` (`VectorStore.search`), refreshed first."""
        self.refresh()
        with self._lock:
            return self.store.search(query, count, candidates, nprobe)

    def windows_of_slots(self, slots: Sequence[int]) -> dict[int, ClipWindow]:
        """The clip window each slot holds, for the slots that still belong to a clip."""
        found: dict[int, ClipWindow] = {}
        with self.connection() as connection:
            for marks, part in _in_chunks([int(slot) for slot in slots]):
                query = f"SELECT slot, clip, start, end FROM windows WHERE slot IN ({marks})"
                found.update((row[0], ClipWindow(*row[1:])) for row in connection.execute(query, part))
        return found

    def entries(self, ids: Sequence[int]) -> dict[int, IndexEntry]:
        found: dict[int, IndexEntry] = {}
        with self.connection() as connection:
            for marks, part in _in_chunks([int(value) for value in ids]):
                for row in connection.execute(f"SELECT id, path FROM clips WHERE id IN ({marks})", part):
                    found[row[0]] = IndexEntry(row[0], row[1])
        return found

    def audio_path(self, entry: IndexEntry) -> Path:
        return self.root / entry.path


class IndexWriter:
    """The one place that changes an index, in an order that survives being killed at any point:
    vector rows are written past the committed ones and fsync'ed, then one SQLite transaction gives them
    to their clips and moves the committed count; the candidate index is saved last (a cache, see
    `mint.inference.candidates`). Open it with `IndexWriter.open` and close it (it is a context manager)."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, info: IndexInfo, ivf_min_clips: int = IVF_MIN_CLIPS
    ) -> None:
        self.path = path
        self.info = info
        self._connection = connection
        self.store = open_store(
            info.vectors, vector_folder(path), info.num_queries, info.embed_dim, ivf_min_clips
        )

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        root: Path,
        fingerprint: str,
        num_queries: int,
        embed_dim: int,
        rebuild: bool = False,
        vectors: str | None = None,
        ivf_min_clips: int = IVF_MIN_CLIPS,
    ) -> IndexWriter:
        """Open (or create) the index at `path` for the folder `root` and the model `fingerprint`, its vectors
        at `vectors` (`mint.inference.stores`; None: where they are, or LOCAL for a new index); `rebuild`
        empties it first, which is also the way from another folder, model, vector store or index format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = connect(path, readonly=False)
        try:
            info = read_info(connection, path, check_format=not rebuild)
            if rebuild and info is not None:
                connection.executescript("DROP TABLE clips; DROP TABLE meta; DROP TABLE IF EXISTS windows;")
                info = None
            connection.executescript(SCHEMA)
            location = vectors if vectors is not None else info.vectors if info is not None else LOCAL
            wanted = IndexInfo(root, fingerprint, num_queries, embed_dim, location)
            if info is not None:
                _check_same(path, info, wanted)
            writer = cls(path, connection, wanted, ivf_min_clips)  # opening the store checks `vectors`
            if info is None:
                meta = {
                    "format": str(INDEX_FORMAT),
                    "root": str(root),
                    "fingerprint": fingerprint,
                    "num_queries": str(num_queries),
                    "embed_dim": str(embed_dim),
                    "vectors": location,
                    "slots": "0",
                    "generation": "0",
                    "created": uuid.uuid4().hex,
                }
                with connection:
                    connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                writer.store.clear()
        except BaseException:
            connection.close()
            raise
        return writer

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()
        self._connection.close()

    def known(self) -> dict[str, ClipFile]:
        rows = self._connection.execute("SELECT path, size, mtime_ns, sha256 FROM clips")
        return {row[0]: ClipFile(*row) for row in rows}

    def count(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM clips").fetchone()[0])

    def touch(self, files: Sequence[ClipFile]) -> None:
        """New size and mtime for files whose content (and so embedding) is unchanged."""
        with self._connection:
            self._connection.executemany(
                "UPDATE clips SET size = ?, mtime_ns = ? WHERE path = ?",
                [(file.size, file.mtime_ns, file.path) for file in files],
            )

    def upsert(
        self,
        files: Sequence[ClipFile],
        embeddings: Sequence[np.ndarray] | np.ndarray,
        spans: Sequence[Sequence[tuple[float, float | None]]] | None = None,
    ) -> None:
        """Add the files, or replace their embeddings. `embeddings` holds each file's `[W, Nq, E]` (its
        windows; an `[n, Nq, E]` array: one window each) and `spans` each window's (start, end) in
        seconds (None: each file whole)."""
        if len(files) != len(embeddings) or (spans is not None and len(spans) != len(files)):
            raise ValueError(
                f"{len(files)} files, {len(embeddings)} embedding sets, {spans and len(spans)} spans"
            )
        if not files:
            return
        sets = [np.asarray(value)[None] if np.ndim(value) == 2 else np.asarray(value) for value in embeddings]
        spans = spans if spans is not None else [[(0.0, None)]] * len(files)
        if any(len(windows) != len(span) for windows, span in zip(sets, spans, strict=True)):
            raise ValueError("each file needs one span per window")
        start = _meta_int(self._connection, "slots")
        self.store.write(start, np.concatenate(sets))
        replaced = self._slots_of([file.path for file in files])
        rows = [(file.path, file.size, file.mtime_ns, file.sha256) for file in files]
        with self._connection:
            self._connection.executemany(
                "INSERT INTO clips (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "sha256 = excluded.sha256",
                rows,
            )
            ids = self._ids_of([file.path for file in files])
            self._connection.executemany(
                "DELETE FROM windows WHERE clip = ?", [(ids[file.path],) for file in files]
            )
            windows, slot = [], start
            for file, span in zip(files, spans, strict=True):
                for window_start, window_end in span:
                    windows.append((slot, ids[file.path], window_start, window_end))
                    slot += 1
            self._connection.executemany(
                "INSERT INTO windows (slot, clip, start, end) VALUES (?, ?, ?, ?)", windows
            )
            self._set_meta(slots=slot, generation=_meta_int(self._connection, "generation") + 1)
        self.store.forget(replaced)

    def delete(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        gone = self._slots_of(paths)
        ids = list(self._ids_of(paths).values())
        with self._connection:
            self._connection.executemany("DELETE FROM windows WHERE clip = ?", [(clip,) for clip in ids])
            self._connection.executemany("DELETE FROM clips WHERE id = ?", [(clip,) for clip in ids])
            self._set_meta(generation=_meta_int(self._connection, "generation") + 1)
        self.store.forget(gone)

    def _ids_of(self, paths: Sequence[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for marks, part in _in_chunks(paths):
            ids.update(self._connection.execute(f"SELECT path, id FROM clips WHERE path IN ({marks})", part))
        return ids

    def _slots_of(self, paths: Sequence[str]) -> np.ndarray:
        slots: list[int] = []
        for marks, part in _in_chunks(paths):
            query = f"SELECT w.slot FROM windows w JOIN clips c ON w.clip = c.id WHERE c.path IN ({marks})"
            slots += [row[0] for row in self._connection.execute(query, part)]
        return np.array(slots, dtype=np.int64)

    def _set_meta(self, **values: int) -> None:
        self._connection.executemany(
            "UPDATE meta SET value = ? WHERE key = ?", [(str(value), key) for key, value in values.items()]
        )

    def refresh_store(self) -> None:
        """Bring what the store derives from the vectors (the built-in candidate index, trained again when
        the clips have outgrown it) up to the committed clips and save it, so that searches need not."""
        self.store.refresh(_live_slots(self._connection), _meta_int(self._connection, "generation"))
        self.store.save()


def _check_same(path: Path, info: IndexInfo, wanted: IndexInfo) -> None:
    """Refuse to update an index for another folder, model or vector store."""
    if info.root != wanted.root:
        raise ConfigError(
            f"{path}: the index is of the folder {info.root}, not {wanted.root}; use another --index, or --rebuild"
        )
    if info.fingerprint != wanted.fingerprint:
        raise ConfigError(
            f"{path}: the index was built with another model (fingerprint {info.fingerprint[:12]}, "
            f"this model's is {wanted.fingerprint[:12]}); use another --index, or --rebuild to re-embed everything"
        )
    if info.vectors != wanted.vectors:
        raise ConfigError(
            f"{path}: the index keeps its vectors at {info.vectors or 'the files beside it'}, not "
            f"{wanted.vectors or 'the files beside it'}; use another --index, or --rebuild"
        )


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


def read_info(connection: sqlite3.Connection, path: Path, check_format: bool = True) -> IndexInfo | None:
    """The index facts, None for a database without them (new, or emptied); another program's database, or
    (with `check_format`) an index of another format, is refused."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"meta", "clips"} <= tables:
        if tables:
            raise DataError(f"{path}: an SQLite file but not a mint index (tables {sorted(tables)})")
        return None
    meta = dict(connection.execute("SELECT key, value FROM meta"))
    if not meta:
        return None
    if meta.get("format") != str(INDEX_FORMAT):
        if not check_format:
            return IndexInfo(Path(meta.get("root", "")), "", 0, 0)
        raise DataError(
            f"{path}: index format {meta.get('format')!r}; this version reads {INDEX_FORMAT}: "
            "build it again with `mint index build --rebuild`"
        )
    return IndexInfo(
        Path(meta["root"]),
        meta["fingerprint"],
        int(meta["num_queries"]),
        int(meta["embed_dim"]),
        meta.get("vectors", LOCAL),
        meta.get("created", ""),
    )
