"""Training steps at the paper's shapes (spec section 6) with random weights, measured.

    .venv/bin/python scripts/paper_smoke.py                 # stage 1, paper scale: 2 steps, batch 4, 10 s clips
    .venv/bin/python scripts/paper_smoke.py --stage 2       # stage 2, paper scale (Flan-T5-XL shapes)
    .venv/bin/python scripts/paper_smoke.py --scale tiny    # configs/pretrain/tiny.yaml (or instruct/tiny.yaml)
    .venv/bin/python scripts/paper_smoke.py --json out.json # also write the measurements

Paper scale is a data2vec-audio-base-shaped encoder (`Data2VecAudioConfig()` defaults: hidden 768,
12 layers), loaded frozen in bf16, and a bert-base-shaped Bridge-Net (hidden 768, 12 layers, 32
queries, cross-attention every 2nd layer, projection 256, `init: scratch` on the MiniLM
vocabulary); stage 2 adds a frozen bf16 LLM of Flan-T5-XL's shapes (d_model 2048, 24 + 24 layers,
32 heads, d_ff 5120, gated-GELU; the MiniLM vocabulary instead of T5's). Random weights are saved
to a temporary folder and loaded back through the real entry points (`run_pretraining` on
configs/pretrain/paper.yaml, `run_instruction_tuning` on configs/instruct/tiny.yaml widened to
these shapes) on generated clips. Nothing is downloaded.

Reports the peak resident memory of this process (VmHWM; the random checkpoints are written by a child
process, so they do not count), the time of each step and the parameter counts.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

# The peak-memory reading every benchmark shares (benchmarks/common.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import peak_rss_gib

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    (1, "paper"): REPO / "configs" / "pretrain" / "paper.yaml",
    (1, "tiny"): REPO / "configs" / "pretrain" / "tiny.yaml",
    (2, "paper"): REPO / "configs" / "instruct" / "tiny.yaml",
    (2, "tiny"): REPO / "configs" / "instruct" / "tiny.yaml",
}
DEFAULTS = {"paper": {"batch_size": 4, "clip_seconds": 10.0}, "tiny": {"batch_size": 16, "clip_seconds": 3.0}}
# configs/instruct/tiny.yaml widened to the paper's encoder and Bridge-Net.
PAPER_STAGE2 = [
    "model.encoder.kind=data2vec",
    "model.encoder.dtype=bfloat16",
    "model.bridge.hidden_size=768",
    "model.bridge.num_layers=12",
    "model.bridge.num_heads=12",
    "model.bridge.intermediate_size=3072",
    "model.bridge.num_queries=32",
    "model.bridge.cross_attention_freq=2",
    "model.embed_dim=256",
    "model.max_text_length=40",
    "model.llm.dtype=bfloat16",
    "trainer.precision=bf16",
]


def save_random_data2vec_base(directory: Path) -> None:
    """data2vec-audio-base shapes with random weights, plus the feature extractor it ships with."""
    import torch
    from transformers import Data2VecAudioConfig, Data2VecAudioModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    Data2VecAudioModel(Data2VecAudioConfig()).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(directory)


def save_random_flan_t5_xl(directory: Path) -> None:
    """Flan-T5-XL shapes with random bf16 weights (about 5.7 GB) and the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from mint.bridge.tokenizer import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    tokenizer.eos_token = tokenizer.sep_token
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=2048,
        d_kv=64,
        d_ff=5120,
        num_layers=24,
        num_decoder_layers=24,
        num_heads=32,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    # Built in bf16 directly: an fp32 copy of 2.8 B weights would need 11 GiB on its own.
    torch.set_default_dtype(torch.bfloat16)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _save_checkpoints(stage: int, work: Path) -> None:
    save_random_data2vec_base(work / "data2vec-audio-base-random")
    if stage == 2:
        save_random_flan_t5_xl(work / "flan-t5-xl-random")


def _safetensors_params(directory: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def _overrides(args: argparse.Namespace, work: Path) -> list[str]:
    overrides = [
        f"output_dir={work / 'run'}",
        "data.source=synthetic",
        f"data.synthetic.num_clips={max(4 * args.batch_size, 32)}",
        f"data.synthetic.clip_seconds={args.clip_seconds}",
        f"model.max_audio_seconds={args.clip_seconds}",
        f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch_size}",
        "trainer.warmup_steps=1",
        "trainer.log_every=1",
        f"trainer.save_every={args.steps}",
        "trainer.num_workers=0",
        "trainer.progress_bar=false",
    ]
    if args.scale == "paper":
        overrides.append(f"model.encoder.name_or_path={work / 'data2vec-audio-base-random'}")
        if args.stage == 1:
            overrides += ["model.bridge.init=scratch", "model.bridge.init_path=null"]
        else:
            overrides += [*PAPER_STAGE2, f"model.llm.name_or_path={work / 'flan-t5-xl-random'}"]
    return overrides


def run(args: argparse.Namespace) -> dict:
    from mint.config import load_config
    from mint.training.config import InstructConfig, PretrainConfig

    with tempfile.TemporaryDirectory(prefix=f"mint-smoke-{args.scale}-{args.stage}-") as tmp:
        work = Path(tmp)
        if args.scale == "paper":
            # In a child process: building the random models must not count towards the peak below.
            child = multiprocessing.get_context("spawn").Process(
                target=_save_checkpoints, args=(args.stage, work)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"building the random checkpoints failed (exit {child.exitcode})")
        config_class = PretrainConfig if args.stage == 1 else InstructConfig
        config = load_config(config_class, CONFIGS[args.stage, args.scale], _overrides(args, work))
        rss_before = peak_rss_gib()
        started = time.perf_counter()
        if args.stage == 1:
            from mint.training.pretrain import run_pretraining

            run_pretraining(config)
        else:
            from mint.training.instruct import run_instruction_tuning

            run_instruction_tuning(config)
        wall = time.perf_counter() - started
        records = [json.loads(line) for line in (work / "run" / "timing.jsonl").read_text().splitlines()]
        elapsed = [r["elapsed_s"] for r in records]
        step_seconds = [b - a for a, b in zip([0.0, *elapsed], elapsed, strict=False)]
        steady = step_seconds[1:] or step_seconds
        model = config.model
        frozen = [work / "data2vec-audio-base-random", work / "flan-t5-xl-random"]
        return {
            "scale": args.scale,
            "stage": args.stage,
            "batch_size": config.trainer.batch_size,
            "clip_seconds": args.clip_seconds,
            "steps": args.steps,
            "precision": config.trainer.precision,
            "encoder": f"{model.encoder.kind} ({model.encoder.dtype}, frozen)",
            "bridge": (
                f"hidden {model.bridge.hidden_size}, {model.bridge.num_layers} layers, "
                f"{model.bridge.num_queries} queries, cross-attention every "
                f"{model.bridge.cross_attention_freq}, projection {model.embed_dim}"
            ),
            "llm": f"{Path(model.llm.name_or_path).name} ({model.llm.dtype}, frozen)"
            if args.stage == 2
            else None,
            "trainable_params": _safetensors_params(work / "run" / "model"),
            "frozen_params": sum(_safetensors_params(path) for path in frozen if path.is_dir()),
            "step_seconds": step_seconds,
            "samples_per_s": config.trainer.batch_size / (sum(steady) / len(steady)),
            "peak_rss_gib": peak_rss_gib(),
            "rss_before_training_gib": rss_before,
            "wall_seconds_with_saving": wall,
            "losses": {k: v for k, v in records[-1].items() if k.startswith("loss")},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--steps", type=int, default=2, help="training steps (the first includes warm-up)")
    parser.add_argument("--batch-size", type=int, help="global batch (default: 4 paper, 16 tiny)")
    parser.add_argument("--clip-seconds", type=float, help="clip length (default: 10 paper, 3 tiny)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    for name, value in DEFAULTS[args.scale].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args)
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
