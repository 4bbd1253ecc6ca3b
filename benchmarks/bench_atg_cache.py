"""A stage-1 step (ATC + ATM + ATG, forward and backward) with ATG reading the contrastive pass's query
states vs ATG running the queries and the caption together through every layer again (the pass before).

Two models with the same weights and dropout off; the same batch of stand-in encoder features, captions
and hard-negative seed; timed interleaved so that the machine's load hits both halves alike. Tiny shapes
(a scratch Bridge-Net of hidden 128, 2 layers, 8 queries, batch 16, 3 s of 40 ms frames) and paper
shapes (hidden 768, 12 layers, 32 queries, cross-attention every 2nd layer, batch 4, 10 s of data2vec
frames).
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import torch
from common import WEIGHT_FREE_TINY, Comparison, stage1_batch

CAPTIONS = (
    "a loud siren wails for a long time then a soft bell rings",
    "two soft knocks followed by a brief high-pitched tone",
    "a bird chirps over pink noise",
    "an engine hums softly while a device beeps three times",
)
SHAPES = {
    # name: (model overrides, batch, frames, timed steps)
    "tiny": (
        [
            # A MintConfig's own keys: the run config's overrides without their "model." prefix.
            *(override.removeprefix("model.") for override in WEIGHT_FREE_TINY),
            "bridge.num_queries=8",
            "bridge.cross_attention_freq=1",
            "embed_dim=64",
            "max_text_length=24",
        ],
        16,
        75,
        15,
    ),
    "paper": (["encoder.kind=mel", "encoder.hidden_size=768", "max_text_length=40"], 4, 499, 2),
}


def _models(overrides: list[str]):
    """(cached, full): the same weights; `full` runs ATG as one joint pass of queries and caption."""
    from mint.bridge import AttentionMode
    from mint.config import load_config
    from mint.modeling import MintConfig, MintModel

    config = load_config(
        MintConfig,
        None,
        ["bridge.init=scratch", "bridge.dropout=0.0", "bridge.attention_dropout=0.0", *overrides],
    )
    torch.manual_seed(0)
    cached = MintModel.from_config(config).train()
    full = copy.deepcopy(cached)
    plain_query_pass = full.query_pass

    def query_pass(audio):
        queries = plain_query_pass(audio)
        queries.audio = audio  # what the joint pass needs again
        return queries

    def generation_logits(queries, input_ids, attention_mask, at=None):
        out = full.bridge(
            audio_features=queries.audio.features,
            audio_mask=queries.audio.mask,
            input_ids=input_ids,
            attention_mask=attention_mask,
            mode=AttentionMode.CAUSAL,
        )
        return full.bridge.lm_logits(out.text_output if at is None else out.text_output[at])

    full.query_pass = query_pass
    full.generation_logits = generation_logits
    return cached, full


def _batch(model, batch: int, frames: int, seed: int):
    return stage1_batch(
        model, [f"{CAPTIONS[row % len(CAPTIONS)]} {row}" for row in range(batch)], frames, seed
    )


def _measure(name: str, overrides: list[str], batch: int, frames: int, steps: int) -> Comparison:
    from mint.objectives import Stage1Objective

    models = dict(zip(("cached", "full"), _models(overrides), strict=True))
    objective = Stage1Objective()
    losses: dict[str, float] = {}
    times: dict[str, list[float]] = {key: [] for key in models}
    for step in range(steps + 1):  # the first step of each is untimed warm-up
        for key, model in models.items():
            inputs = _batch(model, batch, frames, seed=step)
            started = time.perf_counter()
            out = model(inputs, objective=objective)
            out.loss.backward()
            elapsed = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
            if step:
                times[key].append(elapsed)
            else:
                losses[key] = float(out.loss_atg.detach())
    difference = abs(losses["cached"] - losses["full"])
    return Comparison(
        item=f"stage-1 step (ATC+ATM+ATG) forward+backward, {name} shapes, batch {batch}",
        baseline="ATG: queries + caption through every layer again",
        ours="ATG: caption over the contrastive pass's query states",
        baseline_s=statistics.median(times["full"]),
        ours_s=statistics.median(times["cached"]),
        note=f"{name}: same ATG loss (first step {losses['full']:.6f} vs {losses['cached']:.6f}, |diff| {difference:.1e})",
    )


def run(work: Path) -> list[Comparison]:
    return [_measure(name, *shape) for name, shape in SHAPES.items()]
