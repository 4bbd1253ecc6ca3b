"""What `mint pretrain`, `mint instruct` and `mint cache-features` share: a YAML run config with dotted
overrides, and the trainer's runtime switches as flags."""

from __future__ import annotations

import argparse

OVERRIDES_HELP = "dotted overrides, e.g. trainer.max_steps=20 output_dir=runs/x"


def add_run_arguments(parser: argparse.ArgumentParser, example: str, training: bool = True) -> None:
    parser.add_argument("config", help=f"YAML run config, e.g. {example}")
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    if training:
        parser.add_argument(
            "--deterministic",
            action="store_true",
            help="ordered kernels: a rerun gives byte-identical metrics.jsonl and weights "
            "(= trainer.deterministic=true)",
        )
        parser.add_argument(
            "--threads", type=int, metavar="N", help="torch threads per process (= trainer.num_threads=N)"
        )


def run_overrides(args: argparse.Namespace) -> list[str]:
    """The dotted overrides, with the flags as overrides after them (a flag wins over the same key)."""
    overrides = list(args.overrides)
    if getattr(args, "deterministic", False):
        overrides.append("trainer.deterministic=true")
    if getattr(args, "threads", None) is not None:
        overrides.append(f"trainer.num_threads={args.threads}")
    return overrides


def print_training_result(result, output_dir: str) -> None:
    print(f"trained to step {result.final_step}; model saved to {output_dir}/model")
    if result.skipped_nonfinite:
        print(f"{result.skipped_nonfinite} step(s) skipped for a non-finite loss")
