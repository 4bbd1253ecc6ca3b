"""The candidate index: faiss over the clips' mean query embeddings, keyed by the clips' vector slots.

A search asks it for the few hundred clips whose mean embedding is nearest the query, then re-scores
those exactly from their stored query embeddings (`mint.inference.vectors`). Below `IVF_MIN_CLIPS` clips
it is exact (a flat inner-product index); from there it is an inverted-file index (IVF-Flat) of about
4 x sqrt(n) lists, k-means trained on a sample of the means, trained again once the clips have grown
fourfold since. faiss's IVF was chosen over usearch's HNSW by measurement on 1M synthetic clips at
32 x 256 (`benchmarks/bench_index.py`): it built in 61 s instead of 104 s and found every exact top-10
among 200 candidates at 16 probed lists in 0.4 ms, where HNSW needed 1,000 candidates for 0.997.

The candidate index is a cache of the vector files: it is saved (atomically) beside them together with
the index generation it reflects, and brought up to date with the SQLite rows (slots added and removed
since) before it is searched, so losing it or a writer dying before saving it costs time, never results.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mint.errors import DataError
from mint.storage import atomic_write_bytes

IVF_MIN_CLIPS = 50_000
REGROW_FACTOR = 4
TRAINING_POINTS_PER_LIST = 40
DEFAULT_NPROBE = 32
_ADD_ROWS = 65_536
# Saved with the index: a saved candidate index of another layout is rebuilt, not trusted.
LAYOUT = 1


def _faiss():
    try:
        import faiss
    except ImportError:  # a core dependency; only a broken install gets here
        raise DataError("searching an index needs faiss: pip install faiss-cpu") from None
    return faiss


def list_count(clips: int) -> int:
    """IVF lists for `clips` clips: the power of two nearest 4 x sqrt(clips)."""
    return 2 ** round(math.log2(4 * math.sqrt(clips)))


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, for spherical k-means lists: candidates go by the direction of a clip's
    mean. Measured: 1M synthetic clips, unit means, 16 of 4,096 lists probed: every exact top-10 among 200
    candidates; at 60k clips (32 of 1,024 lists, 512 candidates) unit and raw means did alike (0.979 and
    0.981 recall@10), so the choice rests on the 1M figure, not on a comparison there."""
    vectors = np.array(vectors, dtype=np.float32, order="C")
    _faiss().normalize_L2(vectors)
    return vectors


class CandidateIndex:
    """Slots of the clips nearest a query vector under the mean-embedding inner product."""

    def __init__(self, embed_dim: int, ivf_min_clips: int = IVF_MIN_CLIPS) -> None:
        self.embed_dim = embed_dim
        self.ivf_min_clips = ivf_min_clips
        self.slots = np.zeros(0, dtype=np.int64)  # sorted: the slots the faiss index holds
        self.generation = -1  # the index generation it reflects (-1: none yet)
        self.trained_for = 0  # clips when the IVF lists were trained (0: exact, no lists)
        self._index = self._flat()

    @property
    def is_exact(self) -> bool:
        return self.trained_for == 0

    def _flat(self):
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.embed_dim))

    # -- keeping up with the index ------------------------------------------------------------------------

    def sync(self, live: np.ndarray, generation: int, means: Callable[[np.ndarray], np.ndarray]) -> bool:
        """Hold exactly the slots `live` (the clips' current rows), `means(slots)` giving their vectors;
        False when it already did (same generation)."""
        if generation == self.generation:
            return False
        live = np.unique(np.asarray(live, dtype=np.int64))
        if self._needs_training(len(live)):
            self._rebuild(live, means)
        else:
            gone = np.setdiff1d(self.slots, live, assume_unique=True)
            if gone.size:
                self._index.remove_ids(gone)
            self._add(np.setdiff1d(live, self.slots, assume_unique=True), means)
        self.slots = live
        self.generation = generation
        return True

    def _needs_training(self, clips: int) -> bool:
        if self.is_exact:
            return clips >= self.ivf_min_clips
        return clips >= REGROW_FACTOR * self.trained_for

    def _rebuild(self, live: np.ndarray, means: Callable[[np.ndarray], np.ndarray]) -> None:
        if len(live) < self.ivf_min_clips:
            self._index, self.trained_for = self._flat(), 0
        else:
            faiss = _faiss()
            lists = list_count(len(live))
            rng = np.random.default_rng(0)  # the same clips train the same lists
            sample = np.sort(
                rng.choice(live, min(len(live), TRAINING_POINTS_PER_LIST * lists), replace=False)
            )
            quantizer = faiss.IndexFlatIP(self.embed_dim)
            index = faiss.IndexIVFFlat(quantizer, self.embed_dim, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.spherical = True  # unit centroids: inner-product lists need no norm bias
            index.train(_unit(means(sample)))
            index.nprobe = DEFAULT_NPROBE
            self._index, self.trained_for = index, len(live)
        self._add(live, means)

    def _add(self, slots: np.ndarray, means: Callable[[np.ndarray], np.ndarray]) -> None:
        for start in range(0, len(slots), _ADD_ROWS):
            part = slots[start : start + _ADD_ROWS]
            self._index.add_with_ids(_unit(means(part)), part)

    # -- searching ----------------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, count: int, nprobe: int = DEFAULT_NPROBE) -> np.ndarray:
        """Up to `count` slots, best first, for one query vector `[E]`."""
        if not self.is_exact:
            self._index.nprobe = nprobe
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        _, labels = self._index.search(query, min(count, len(self.slots)) or 1)
        found = labels[0]
        return found[found >= 0]

    # -- saving -------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            index=_faiss().serialize_index(self._index),
            slots=self.slots,
            state=np.array([self.generation, self.trained_for, self.embed_dim, self.ivf_min_clips, LAYOUT]),
        )
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, embed_dim: int, ivf_min_clips: int = IVF_MIN_CLIPS) -> CandidateIndex:
        """The saved candidate index at `path`, or an empty one (to be synced) if there is none or it does
        not fit (another width, threshold or layout): it is a cache, rebuilt rather than trusted."""
        candidates = cls(embed_dim, ivf_min_clips)
        try:
            with np.load(path) as saved:
                generation, trained_for, *layout = (int(value) for value in saved["state"])
                if layout != [embed_dim, ivf_min_clips, LAYOUT]:
                    return candidates
                candidates._index = _faiss().deserialize_index(saved["index"])
                candidates.slots = saved["slots"]
                candidates.generation, candidates.trained_for = generation, trained_for
        except (OSError, ValueError, KeyError, RuntimeError):
            return cls(embed_dim, ivf_min_clips)
        return candidates
