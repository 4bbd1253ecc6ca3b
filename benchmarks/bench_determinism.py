"""What `trainer.deterministic` costs: stage-1 steps of configs/pretrain/tiny.yaml with and without ordered
kernels, interleaved runs, median step time."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

from common import REPO, Comparison

STEPS = 16
ROUNDS = 3


def _step_seconds(output_dir: Path) -> list[float]:
    """Times of the steps after the first two (warm-up), from timing.jsonl's cumulative elapsed_s."""
    records = [json.loads(line) for line in (output_dir / "timing.jsonl").read_text().splitlines()]
    return [b["elapsed_s"] - a["elapsed_s"] for a, b in itertools.pairwise(records)][2:]


def run(work: Path) -> list[Comparison]:
    from mint.config import load_config
    from mint.training.config import PretrainConfig
    from mint.training.pretrain import run_pretraining

    times: dict[bool, list[float]] = {False: [], True: []}
    for round_index, deterministic in itertools.product(range(ROUNDS), (False, True)):
        output_dir = work / f"{'ordered' if deterministic else 'default'}-{round_index}"
        overrides = [
            f"output_dir={output_dir}",
            f"trainer.max_steps={STEPS}",
            f"trainer.save_every={STEPS}",
            "trainer.progress_bar=false",
            f"trainer.deterministic={str(deterministic).lower()}",
        ]
        run_pretraining(load_config(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", overrides))
        times[deterministic] += _step_seconds(output_dir)
    return [
        Comparison(
            item="stage-1 step, configs/pretrain/tiny.yaml (batch 16, 3 s clips)",
            baseline="default kernels",
            ours="trainer.deterministic",
            baseline_s=statistics.median(times[False]),
            ours_s=statistics.median(times[True]),
            note=f"median of {len(times[True])} steps each, {ROUNDS} interleaved runs of {STEPS} steps; "
            "a ratio below 1 is the price of bit-identical reruns",
        )
    ]
