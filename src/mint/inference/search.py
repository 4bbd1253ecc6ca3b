"""Searching an `AudioIndex` with a text or an example clip.

Text query: every clip's ATC similarity to the text (the best of its Nq query embeddings), computed
with numpy over the stored float16 embeddings a chunk of rows at a time, so memory holds one chunk and
one score per clip (100k clips x 32 queries x 256 dims is 1.6 GB on disk, but never in memory at once).
The top `rerank` clips under ATC are then re-scored with ATM (the Bridge-Net's joint audio-text pass);
ATM needs the clips' encoder features, so their audio is decoded and encoded again from the indexed
folder. Re-ranked clips come first, in the order of `rerank_score` (ATC similarity + w x ATM log-odds,
w the model's `rerank_weight`, as `mint eval retrieve` scores); the remaining places of the top `k` keep
ATC order. A candidate whose file is gone or unreadable is left out.

Example-clip query: ATM scores audio against text and has no audio-audio form, so the ranking is by
embedding similarity alone: for each query embedding of the example its best match among the clip's
query embeddings, averaged over the example's queries (a set-to-set similarity in the spirit of ATC's
best-query rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mint.errors import ConfigError, MintError
from mint.inference.index import AudioIndex, IndexEntry
from mint.inference.inputs import AudioInput
from mint.objectives.matching import rerank_score

logger = logging.getLogger(__name__)

SCAN_ROWS = 2048


class Embedder(Protocol):
    """What search needs of a model (`MintPipeline` is one): embeddings of a text or a clip in the index's
    space, the matching score of clips with a text, and the identity the index was built for."""

    batch_size: int  # clips encoded together for matching

    @property
    def fingerprint(self) -> str: ...  # the model's identity, checked against the index's

    @property
    def rerank_weight(self) -> float: ...  # w of ATC similarity + w x ATM log-odds

    def load_audio(self, audio: AudioInput) -> list[np.ndarray]: ...  # as the model's front end reads it

    def encode(self, waveforms: list[np.ndarray]) -> Any: ...  # clips -> the model's audio features

    def match_scores(self, audio: Any, text: str) -> np.ndarray: ...  # ATM log-odds per clip

    def embed_text(self, texts: str) -> np.ndarray: ...

    def embed_audio(self, clips: AudioInput, sample_rate: int | None = None) -> np.ndarray: ...


@dataclass
class SearchHit:
    """One result: `path` relative to the index root; `similarity` the first-stage score; `match` the
    ATM log-odds and `score` the re-ranking score (`rerank_score`) when the hit was re-ranked, else None."""

    rank: int
    path: str
    similarity: float
    match: float | None
    id: int
    score: float | None = None

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "path": self.path,
            "similarity": self.similarity,
            "match": self.match,
            "score": self.score,
            "id": self.id,
        }


def text_similarity(embeddings: np.ndarray, text: np.ndarray) -> np.ndarray:
    """`[n]`: for clips `[n, Nq, E]` and one text `[E]`, the best query's dot product (ATC)."""
    # einsum casts the float16 rows block by block instead of materialising a float32 copy (twice as fast).
    return np.einsum(
        "nqe,e->nq", embeddings, text.astype(np.float32), dtype=np.float32, casting="unsafe"
    ).max(axis=1)


def audio_similarity(embeddings: np.ndarray, example: np.ndarray) -> np.ndarray:
    """`[n]`: for clips `[n, Nq, E]` and an example `[Q, E]`, the mean over the example's queries of their
    best dot product with a query of the clip."""
    pairs = np.einsum(
        "nqe,pe->nqp", embeddings, example.astype(np.float32), dtype=np.float32, casting="unsafe"
    )
    return pairs.max(axis=1).mean(axis=1)


def scan_scores(
    index: AudioIndex, score: Callable[[np.ndarray], np.ndarray], chunk_rows: int = SCAN_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float64 scores) of every clip of the index, scored chunk by chunk."""
    ids, scores = [], []
    for chunk_ids, embeddings in index.scan(chunk_rows):
        ids.append(chunk_ids)
        scores.append(score(embeddings).astype(np.float64))
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return np.concatenate(ids), np.concatenate(scores)


def ranked(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions of `ids` by score, highest first; ties go to the lower id."""
    return np.lexsort((ids, -scores))


def _match_candidates(
    embedder: Embedder, index: AudioIndex, entries: list[IndexEntry], text: str
) -> dict[int, float]:
    """ATM log-odds of each readable candidate's audio with `text`, by id."""
    readable: list[tuple[IndexEntry, np.ndarray]] = []
    for entry in entries:
        try:
            readable.append((entry, embedder.load_audio(index.audio_path(entry))[0]))
        except (MintError, OSError) as error:
            logger.warning("search: leaving out %s, whose audio cannot be read now: %s", entry.path, error)
    scores: dict[int, float] = {}
    for start in range(0, len(readable), embedder.batch_size):
        part = readable[start : start + embedder.batch_size]
        audio = embedder.encode([waveform for _, waveform in part])
        for (entry, _), value in zip(part, embedder.match_scores(audio, text), strict=True):
            scores[entry.id] = float(value)
    return scores


def search_index(
    embedder: Embedder,
    index: AudioIndex,
    query: str | AudioInput,
    k: int = 10,
    rerank: int = 32,
    sample_rate: int | None = None,
) -> list[SearchHit]:
    """The top `k` clips for a text (`str`) or one example clip; `rerank` text candidates go through ATM
    (0: ATC alone). See the module docstring."""
    if k < 1 or rerank < 0:
        raise ConfigError(f"k and rerank: expected k >= 1 and rerank >= 0, got k={k}, rerank={rerank}")
    index.check_model(embedder.fingerprint)
    is_text = isinstance(query, str)
    if is_text:
        if not query.strip():
            raise ConfigError("query: expected a non-empty text")
        text = embedder.embed_text(query)[0]
        ids, scores = scan_scores(index, lambda chunk: text_similarity(chunk, text))
    else:
        if isinstance(query, list):
            raise ConfigError("query: expected one example clip, got a list")
        example = embedder.embed_audio(query, sample_rate=sample_rate)[0]
        ids, scores = scan_scores(index, lambda chunk: audio_similarity(chunk, example))
        rerank = 0
    order = ranked(ids, scores)
    rerank = min(rerank, len(order))
    wanted = order[: rerank + k]
    entries = index.entries(ids[wanted].tolist())
    similarity = dict(zip(ids[wanted].tolist(), scores[wanted].tolist(), strict=True))
    candidates = [entries[int(value)] for value in ids[order[:rerank]] if int(value) in entries]
    matches = _match_candidates(embedder, index, candidates, query) if rerank else {}
    weight = embedder.rerank_weight
    scores = {clip: float(rerank_score(similarity[clip], match, weight)) for clip, match in matches.items()}
    first = sorted(scores, key=lambda clip: (-scores[clip], -similarity[clip], clip))
    rest = [int(value) for value in ids[order[rerank : rerank + k]] if int(value) in entries]
    return [
        SearchHit(rank, entries[clip].path, similarity[clip], matches.get(clip), clip, scores.get(clip))
        for rank, clip in enumerate([*first, *rest][:k], start=1)
    ]
