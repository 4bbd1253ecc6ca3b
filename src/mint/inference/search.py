"""Searching an `AudioIndex` with a text or an example clip.

Text query: first the `candidates` clips whose mean query embedding is nearest the text, from the
candidate index (exact below 50k clips, faiss IVF above: `mint.inference.candidates`); then each
candidate's exact ATC similarity (the best of its Nq stored query embeddings, `mint.inference.vectors`),
which orders them. The top `rerank` clips under ATC are then re-scored with ATM (the Bridge-Net's joint
audio-text pass); ATM needs the clips' encoder features, so their audio is decoded and encoded again from
the indexed folder. Re-ranked clips come first, in the order of `rerank_score` (ATC similarity + w x ATM
log-odds, w the model's `rerank_weight`, as `mint eval retrieve` scores); the remaining places of the top
`k` keep ATC order. A candidate whose file is gone or unreadable is left out.

Example-clip query: ATM scores audio against text and has no audio-audio form, so the ranking is by
embedding similarity alone: for each query embedding of the example its best match among the clip's
query embeddings, averaged over the example's queries (a set-to-set similarity in the spirit of ATC's
best-query rule); the candidates are the clips whose mean embedding is nearest the example's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mint.errors import ConfigError, MintError
from mint.inference.candidates import DEFAULT_NPROBE
from mint.inference.index import AudioIndex, ClipWindow, IndexEntry
from mint.inference.inputs import AudioInput
from mint.objectives.matching import rerank_score

logger = logging.getLogger(__name__)

# Clips re-scored exactly per query. 200 held every exact top-10 of 1M synthetic clips (the faiss/usearch
# comparison in mint.inference.candidates); 512 leaves room for a real model's wider spread.
DEFAULT_CANDIDATES = 512


class Embedder(Protocol):
    """What search needs of a model (`MintPipeline` is one): embeddings of a text or a clip in the index's
    space, the matching score of clips with a text, and the identity the index was built for."""

    batch_size: int  # clips encoded together for matching

    @property
    def fingerprint(self) -> str: ...  # the model's identity, checked against the index's

    @property
    def rerank_weight(self) -> float: ...  # w of ATC similarity + w x ATM log-odds

    def load_audio(self, audio: AudioInput) -> list[np.ndarray]: ...  # as the model's front end reads it

    def load_window(self, audio: AudioInput, start: float, end: float) -> np.ndarray: ...  # seconds of it

    def encode(self, waveforms: list[np.ndarray]) -> Any: ...  # clips -> the model's audio features

    def match_scores(self, audio: Any, text: str) -> np.ndarray: ...  # ATM log-odds per clip

    def embed_text(self, texts: str) -> np.ndarray: ...

    def embed_audio(self, clips: AudioInput, sample_rate: int | None = None) -> np.ndarray: ...


@dataclass
class SearchHit:
    """One result: `path` relative to the index root; `similarity` the first-stage score; `match` the
    ATM log-odds and `score` the re-ranking score (`rerank_score`) when the hit was re-ranked, else None;
    `start` and `end` the seconds of the clip's best window (`end` None: the clip is one window)."""

    rank: int
    path: str
    similarity: float
    match: float | None
    id: int
    score: float | None = None
    start: float = 0.0
    end: float | None = None

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "path": self.path,
            "similarity": self.similarity,
            "match": self.match,
            "score": self.score,
            "id": self.id,
            "start": self.start,
            "end": self.end,
        }


def ranked(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions of `ids` by score, highest first; ties go to the lower id."""
    return np.lexsort((ids, -scores))


@dataclass(frozen=True)
class RankedClips:
    """The best clips, best first: ids, float64 scores, and each clip's best window."""

    ids: np.ndarray
    scores: np.ndarray
    windows: list[ClipWindow]


def rank_clips(
    index: AudioIndex,
    query: np.ndarray,
    count: int,
    candidates: int = DEFAULT_CANDIDATES,
    nprobe: int = DEFAULT_NPROBE,
) -> RankedClips:
    """The best `count` clips for `query` `[Q, E]` (a text's embedding, or an example clip's): `candidates`
    windows proposed by their mean embedding and scored exactly by the index's vector store
    (`mint.inference.stores`); a clip scores as its best window."""
    slots, scores = index.search_slots(np.atleast_2d(query), count, candidates, nprobe)
    owners = index.windows_of_slots(slots.tolist())  # a clip deleted since the last refresh has none
    best: dict[int, tuple[float, ClipWindow]] = {}
    for slot, score in zip(slots.tolist(), np.asarray(scores, dtype=np.float64).tolist(), strict=True):
        window = owners.get(slot)
        if window is not None and (window.clip not in best or score > best[window.clip][0]):
            best[window.clip] = (score, window)
    ids = np.array(list(best), dtype=np.int64)
    values = np.array([score for score, _ in best.values()], dtype=np.float64)
    order = ranked(ids, values)[:count]
    return RankedClips(ids[order], values[order], [best[int(clip)][1] for clip in ids[order]])


def _match_candidates(
    embedder: Embedder, index: AudioIndex, entries: list[tuple[IndexEntry, ClipWindow]], text: str
) -> dict[int, float]:
    """ATM log-odds of each readable candidate's best window with `text`, by id."""
    readable: list[tuple[IndexEntry, np.ndarray]] = []
    for entry, window in entries:
        path = index.audio_path(entry)
        try:
            if window.end is None:
                waveform = embedder.load_audio(path)[0]
            else:
                waveform = embedder.load_window(path, window.start, window.end)
            readable.append((entry, waveform))
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
    candidates: int = DEFAULT_CANDIDATES,
    nprobe: int = DEFAULT_NPROBE,
) -> list[SearchHit]:
    """The top `k` clips for a text (`str`) or one example clip; `rerank` text candidates go through ATM
    (0: ATC alone); `candidates` and `nprobe` set the candidate search (`rank_clips`). See the module
    docstring."""
    if k < 1 or rerank < 0 or candidates < 1 or nprobe < 1:
        raise ConfigError(
            "k, rerank, candidates and nprobe: expected k, candidates, nprobe >= 1 and rerank >= 0, got "
            f"k={k}, rerank={rerank}, candidates={candidates}, nprobe={nprobe}"
        )
    index.check_model(embedder.fingerprint)
    is_text = isinstance(query, str)
    if is_text:
        if not query.strip():
            raise ConfigError("query: expected a non-empty text")
        embeddings = embedder.embed_text(query)
    else:
        if isinstance(query, list):
            raise ConfigError("query: expected one example clip, got a list")
        embeddings = embedder.embed_audio(query, sample_rate=sample_rate)[0]
        rerank = 0
    found = rank_clips(index, embeddings, rerank + k, candidates, nprobe)
    ids = found.ids
    rerank = min(rerank, len(ids))
    entries = index.entries(ids.tolist())
    similarity = dict(zip(ids.tolist(), found.scores.tolist(), strict=True))
    windows = dict(zip(ids.tolist(), found.windows, strict=True))
    first_stage = [(entries[clip], windows[clip]) for clip in ids[:rerank].tolist() if clip in entries]
    matches = _match_candidates(embedder, index, first_stage, query) if rerank else {}
    weight = embedder.rerank_weight
    scores = {clip: float(rerank_score(similarity[clip], match, weight)) for clip, match in matches.items()}
    first = sorted(scores, key=lambda clip: (-scores[clip], -similarity[clip], clip))
    rest = [int(value) for value in ids[rerank : rerank + k] if int(value) in entries]
    return [
        SearchHit(
            rank,
            entries[clip].path,
            similarity[clip],
            matches.get(clip),
            clip,
            scores.get(clip),
            windows[clip].start,
            windows[clip].end,
        )
        for rank, clip in enumerate([*first, *rest][:k], start=1)
    ]
