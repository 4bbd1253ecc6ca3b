"""Where an index keeps its clips' query embeddings: the built-in files, or a vector database.

An index (`mint.inference.index`) gives every stored embedding set a *slot*, an integer its SQLite rows
point at; a vector store keeps the sets by slot and finds the best ones for a query. A query is `[Q, E]`
embeddings and a clip's score is the mean over them of their best dot product with one of the clip's
`Nq` embeddings: a text (Q = 1) gets its ATC similarity, an example clip the set-to-set similarity of
`mint.inference.search`.

* `LocalVectorStore` (the default): compressed files and a faiss candidate index beside the SQLite file.
* `QdrantVectorStore` (`mint.inference.qdrant_store`): a Qdrant collection (a server or cluster, or
  Qdrant's embedded local mode) with a dense mean vector for candidates and a multivector for MaxSim;
  chosen by `mint index build --vectors qdrant://HOST:PORT/COLLECTION` (or `qdrant-local:///DIR/COLLECTION`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

import numpy as np

from mint.errors import ConfigError
from mint.inference.candidates import IVF_MIN_CLIPS, CandidateIndex
from mint.inference.vectors import QueryVectors

CANDIDATES_FILE = "candidates.npz"
LOCAL = ""  # the `vectors` location of an index whose vectors are the built-in files


class VectorStore(Protocol):
    def clear(self) -> None:
        """Empty the store (a new or rebuilt index)."""

    def write(self, start: int, embeddings: np.ndarray) -> None:
        """Keep `embeddings` `[n, Nq, E]` as slots `start ..`, durably when this returns, replacing what a
        dead writer may have left at those slots."""

    def forget(self, slots: np.ndarray) -> None:
        """Slots that no clip owns any more (replaced or deleted)."""

    def refresh(self, live: np.ndarray, generation: int) -> None:
        """Bring what is derived from the vectors up to date with the committed slots `live`."""

    def save(self) -> None:
        """Keep what `refresh` derived, so that the next reader need not derive it again."""

    def search(
        self, query: np.ndarray, count: int, candidates: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(slots, scores) of about the best `count` slots for `query` `[Q, E]`, from `candidates` proposed
        by each slot's mean embedding (`nprobe` inverted lists probed, where there are lists); may hold
        slots that no clip owns any more, which the caller drops."""

    def close(self) -> None: ...


class LocalVectorStore:
    """The built-in store: `QueryVectors` files and a `CandidateIndex` saved beside them."""

    def __init__(
        self, folder: Path, num_queries: int, embed_dim: int, ivf_min_clips: int = IVF_MIN_CLIPS
    ) -> None:
        self.vectors = QueryVectors(folder, num_queries, embed_dim)
        self.candidate_file = folder / CANDIDATES_FILE
        self.ivf_min_clips = ivf_min_clips
        self._candidates: CandidateIndex | None = None

    @property
    def candidates(self) -> CandidateIndex:
        if self._candidates is None:
            self._candidates = CandidateIndex.load(
                self.candidate_file, self.vectors.embed_dim, self.ivf_min_clips
            )
        return self._candidates

    def clear(self) -> None:
        self.vectors.close()
        shutil.rmtree(self.vectors.folder, ignore_errors=True)
        self._candidates = None

    def write(self, start: int, embeddings: np.ndarray) -> None:
        self.vectors.write(start, embeddings)

    def forget(self, slots: np.ndarray) -> None:
        pass  # the rows stay in the files, unused; the next refresh drops them from the candidates

    def refresh(self, live: np.ndarray, generation: int) -> None:
        self.candidates.sync(live, generation, self.vectors.means)

    def save(self) -> None:
        self.candidate_file.parent.mkdir(parents=True, exist_ok=True)
        self.candidates.save(self.candidate_file)

    def search(
        self, query: np.ndarray, count: int, candidates: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        slots = self.candidates.search(query.mean(axis=0), max(candidates, count), nprobe)
        if len(query) == 1:
            return slots, self.vectors.text_scores(slots, query[0])
        pairs = np.einsum("nqe,pe->nqp", self.vectors.embeddings(slots), query.astype(np.float32))
        return slots, pairs.max(axis=1).mean(axis=1)

    def close(self) -> None:
        self.vectors.close()


def open_store(
    location: str, folder: Path, num_queries: int, embed_dim: int, ivf_min_clips: int
) -> VectorStore:
    """The store at `location` (`LOCAL`: the files in `folder`; a `qdrant` URL: that collection)."""
    if location == LOCAL:
        return LocalVectorStore(folder, num_queries, embed_dim, ivf_min_clips)
    if location.startswith(("qdrant://", "qdrant-local://")):
        from mint.inference.qdrant_store import QdrantVectorStore

        return QdrantVectorStore(location, num_queries, embed_dim)
    raise ConfigError(
        f"--vectors {location!r}: expected qdrant://HOST:PORT/COLLECTION or qdrant-local:///DIR/COLLECTION "
        "(or nothing, for the files beside the index)"
    )
