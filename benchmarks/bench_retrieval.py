"""Retrieval at N = 1000: ATC ranking with ATM re-ranking of each query's top k vs ATM on all N x N pairs.

A small model (configs/pretrain/tiny.yaml's former weight-free model narrowed to hidden 64 and 4
queries, so that the benchmark stays short) on random encoder features and generated captions. The re-ranking path is timed whole: audio and text embeddings, the N x N
similarity, top-k in both directions and the matching head on the union of those pairs. Matching
all N x N pairs (a million Bridge-Net passes) is timed on the first rows and scaled to N rows,
which the timing of whole batches of pairs makes exact up to noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import REPO, WEIGHT_FREE_TINY, Comparison, median_seconds

N = 1000
K = 16
FRAMES = 75  # 3 s of the tiny config's 40 ms audio tokens
PAIR_BATCH = 500
TIMED_ROWS = 4
SMALL = [
    *WEIGHT_FREE_TINY,
    "model.encoder.hidden_size=64",
    "model.bridge.hidden_size=64",
    "model.bridge.intermediate_size=128",
    "model.bridge.num_queries=4",
    "model.max_text_length=16",
]
WORDS = [
    "a",
    "dog",
    "cat",
    "car",
    "bird",
    "man",
    "woman",
    "child",
    "engine",
    "rain",
    "wind",
    "water",
    "door",
    "bell",
    "siren",
    "barks",
    "talks",
    "runs",
    "drips",
]


def _captions(count: int) -> list[str]:
    generator = torch.Generator().manual_seed(1)
    picks = torch.randint(len(WORDS), (count, 8), generator=generator).tolist()
    return [" ".join(WORDS[i] for i in row) for row in picks]


def run(work: Path) -> list[Comparison]:
    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.modeling.outputs import AudioFeatures
    from mint.objectives.contrastive import audio_text_similarity
    from mint.training.config import PretrainConfig

    torch.manual_seed(0)
    config = load_config(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", SMALL)
    model = MintModel.from_config(config.model).eval()
    features = torch.randn(N, FRAMES, model.encoder.hidden_size)
    audio = model.normalise_audio(features, torch.ones(N, FRAMES, dtype=torch.bool))
    ids, mask = model.tokenize(_captions(N))

    def match(rows: torch.Tensor, columns: torch.Tensor) -> None:
        for start in range(0, len(rows), PAIR_BATCH):
            r, c = rows[start : start + PAIR_BATCH], columns[start : start + PAIR_BATCH]
            model.match_logits(AudioFeatures(audio.features[r], audio.mask[r]), ids[c], mask[c])

    def rerank() -> int:
        similarity = audio_text_similarity(model.audio_embeddings(audio), model.text_embeddings(ids, mask))
        needed = torch.zeros(N, N, dtype=torch.bool)
        needed.scatter_(1, similarity.topk(K, dim=1).indices, True)
        needed.T.scatter_(1, similarity.T.topk(K, dim=1).indices, True)
        rows, columns = needed.nonzero(as_tuple=True)
        match(rows, columns)
        return len(rows)

    def full_rows() -> None:
        rows = torch.arange(TIMED_ROWS).repeat_interleave(N)
        match(rows, torch.arange(N).repeat(TIMED_ROWS))

    with torch.no_grad():
        full = median_seconds(full_rows, repeats=3) * N / TIMED_ROWS
        started = time.perf_counter()
        pairs = rerank()
        ours = time.perf_counter() - started
    return [
        Comparison(
            item=f"retrieval scoring, N = {N}, small model",
            baseline=f"ATM on all {N}x{N} pairs",
            ours=f"ATC + ATM re-rank of top-{K}",
            baseline_s=full,
            ours_s=ours,
            note=f"re-rank scores {pairs} pairs; full matching timed on {TIMED_ROWS} rows, scaled to {N}",
        )
    ]
