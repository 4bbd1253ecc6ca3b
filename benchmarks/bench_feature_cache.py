"""Stage-1 training step on cached encoder features vs recomputing a Whisper-tiny-sized encoder.

Both runs go through `run_pretraining` (configs/pretrain/tiny.yaml with its former scratch Bridge-Net of
hidden 128, the encoder padding every clip to Whisper's 30 s) on a manifest of
generated 3 s WAV files, the way a real dataset is read; the step time is read from the trainer's
own log: the median step, leaving out the first (warm-up).
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path

from common import REPO, WEIGHT_FREE_TINY, Comparison, save_random_whisper_tiny

BATCH = 8
STEPS = 6
CLIPS = 16


def _step_seconds(output_dir: Path) -> float:
    """Median time of the steps after the first (timing.jsonl's elapsed_s is cumulative)."""
    records = [json.loads(line) for line in (output_dir / "timing.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in records]
    return statistics.median(b - a for a, b in itertools.pairwise(elapsed))


def run(work: Path) -> list[Comparison]:
    from mint.config import load_config
    from mint.data.synth.corpus import SynthSpec, generate_corpus
    from mint.training.config import PretrainConfig
    from mint.training.pretrain import run_feature_caching, run_pretraining

    encoder = save_random_whisper_tiny(work / "whisper-tiny-random")
    spec = SynthSpec(num_clips=CLIPS, seed=0, sample_rate=16000, clip_seconds=3.0, max_events=2)
    corpus = generate_corpus(spec, work / "corpus", workers=1, splits={"train": 1.0})
    common = [
        *WEIGHT_FREE_TINY,
        "model.encoder.kind=whisper",
        f"model.encoder.name_or_path={encoder}",
        "data.source=manifest",
        f"data.manifest={corpus / 'train.jsonl'}",
        "model.max_audio_seconds=3.0",
        f"data.feature_cache={work / 'cache'}",
        f"trainer.max_steps={STEPS}",
        f"trainer.batch_size={BATCH}",
        "trainer.log_every=1",
        f"trainer.save_every={STEPS}",
        "trainer.progress_bar=false",
    ]

    def config(name: str, extra: list[str]) -> PretrainConfig:
        return load_config(
            PretrainConfig,
            REPO / "configs/pretrain/tiny.yaml",
            [*common, f"output_dir={work / name}", *extra],
        )

    started = time.perf_counter()
    report = run_feature_caching(config("caching", []), progress=False)
    caching_s = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"feature caching failed for {report.failed[:3]}")
    run_pretraining(config("live", []))
    run_pretraining(config("cached", ["data.use_feature_cache=true"]))
    return [
        Comparison(
            item=f"stage-1 step, batch {BATCH}, 3 s clips",
            baseline="Whisper-tiny-sized encoder recomputed",
            ours="feature cache",
            baseline_s=_step_seconds(work / "live"),
            ours_s=_step_seconds(work / "cached"),
            target=5.0,
            note=f"one-time caching of {CLIPS} clips: {caching_s:.1f} s",
        )
    ]
