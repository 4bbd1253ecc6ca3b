"""`mint pretrain` (stage 1) and `mint cache-features` (either stage: one cache serves both, since an entry
is keyed by the clip's content digest, the encoder and the front-end settings, not by the stage)."""

from __future__ import annotations

import argparse

from mint.cli.run_args import add_run_arguments, print_training_result, run_overrides
from mint.config import load_config


def _pretrain(args: argparse.Namespace) -> int:
    from mint.training.config import PretrainConfig
    from mint.training.pretrain import run_pretraining

    config = load_config(PretrainConfig, args.config, run_overrides(args))
    print_training_result(run_pretraining(config), config.output_dir)
    return 0


def _cache_features(args: argparse.Namespace) -> int:
    if args.stage == "instruct":
        from mint.training.config import InstructConfig
        from mint.training.instruct import run_instruct_feature_caching

        config = load_config(InstructConfig, args.config, args.overrides)
        report = run_instruct_feature_caching(config, batch_size=args.batch_size)
    else:
        from mint.training.config import PretrainConfig
        from mint.training.pretrain import run_feature_caching

        config = load_config(PretrainConfig, args.config, args.overrides)
        report = run_feature_caching(config, batch_size=args.batch_size)
    print(
        f"feature cache {config.data.feature_cache}: {report.written} written, "
        f"{report.already_cached} already cached, {len(report.failed)} failed"
    )
    for clip_id, reason in report.failed[:10]:
        print(f"  skipped {clip_id}: {reason}")
    return 0 if not report.failed else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    pretrain = subparsers.add_parser("pretrain", help="stage 1: multi-target pre-training (ATC, ATM, ATG)")
    add_run_arguments(pretrain, "configs/pretrain/tiny.yaml")
    pretrain.set_defaults(func=_pretrain)

    cache = subparsers.add_parser(
        "cache-features",
        help="store frozen-encoder features once, for data.use_feature_cache=true in either stage",
    )
    add_run_arguments(cache, "configs/pretrain/tiny.yaml (its data.feature_cache is written)", training=False)
    cache.add_argument("--batch-size", type=int, default=16)
    cache.add_argument(
        "--stage",
        choices=("pretrain", "instruct"),
        default="pretrain",
        help="the kind of config: a `mint pretrain` one (default) or a `mint instruct` one, whose "
        "instruction file's audio is cached too",
    )
    cache.set_defaults(func=_cache_features)
