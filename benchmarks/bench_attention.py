"""Bridge-Net with fused attention (`sdpa`) vs the eager implementation: same outputs, time per pass.

Paper shapes (hidden 768, 12 layers, 32 queries, cross-attention every 2nd layer), random weights,
the ATM pass (queries and text see each other, cross-attention to 10 s of data2vec-rate frames),
forward and backward.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from common import Comparison

BATCH = 4
FRAMES = 499  # data2vec frames of a 10 s clip
TEXT = 24
REPEATS = 3  # timed passes of each, after one untimed


def run(work: Path) -> list[Comparison]:
    from mint.bridge import AttentionMode, BridgeConfig, BridgeNet

    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(BATCH, FRAMES, 768, generator=generator)
    audio_mask = torch.ones(BATCH, FRAMES, dtype=torch.bool)
    audio_mask[1:, FRAMES // 2 :] = False
    ids = torch.randint(1000, 2000, (BATCH, TEXT), generator=generator)
    text_mask = torch.ones(BATCH, TEXT, dtype=torch.long)
    text_mask[0, TEXT // 2 :] = 0

    models = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        config = BridgeConfig(attn_implementation=implementation, dropout=0.0, attention_dropout=0.0)
        models[implementation] = BridgeNet(config).train()

    def forward(model: BridgeNet) -> torch.Tensor:
        out = model(
            audio_features=audio,
            audio_mask=audio_mask,
            input_ids=ids,
            attention_mask=text_mask,
            mode=AttentionMode.BIDIRECTIONAL,
        )
        return torch.cat([out.query_output, out.text_output], dim=1)

    def step(model: BridgeNet) -> None:
        forward(model).square().mean().backward()
        model.zero_grad(set_to_none=True)

    with torch.no_grad():
        difference = (forward(models["sdpa"]) - forward(models["eager"])).abs().max().item()
    # Interleaved, so that a change in the machine's load hits both the same way.
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(REPEATS + 1):
        for name, model in models.items():
            started = time.perf_counter()
            step(model)
            times[name].append(time.perf_counter() - started)
    timings = {name: statistics.median(values[1:]) for name, values in times.items()}
    return [
        Comparison(
            item=f"Bridge-Net forward+backward, paper shapes, batch {BATCH}",
            baseline="eager attention",
            ours="fused attention (sdpa)",
            baseline_s=timings["eager"],
            ours_s=timings["sdpa"],
            note=f"same outputs: max abs difference {difference:.1e}",
        )
    ]
