"""`mint pretrain` (stage 1) and `mint cache-features` (either stage: one cache serves both, since an entry
is keyed by the clip's content digest, the encoder and the front-end settings, not by the stage)."""

from __future__ import annotations

import argparse

from mint.config import load_config

_OVERRIDES_HELP = "dotted overrides, e.g. trainer.max_steps=20 output_dir=runs/x"


def _pretrain(args: argparse.Namespace) -> int:
    from mint.training.config import PretrainConfig
    from mint.training.pretrain import run_pretraining

    config = load_config(PretrainConfig, args.config, args.overrides)
    result = run_pretraining(config)
    print(f"trained to step {result.final_step}; model saved to {config.output_dir}/model")
    if result.skipped_nonfinite:
        print(f"{result.skipped_nonfinite} step(s) skipped for a non-finite loss")
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
    pretrain.add_argument("config", help="YAML run config, e.g. configs/pretrain/tiny.yaml")
    pretrain.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    pretrain.set_defaults(func=_pretrain)

    cache = subparsers.add_parser(
        "cache-features",
        help="store frozen-encoder features once, for data.use_feature_cache=true in either stage",
    )
    cache.add_argument("config", help="the YAML run config (its data.feature_cache is written)")
    cache.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    cache.add_argument("--batch-size", type=int, default=16)
    cache.add_argument(
        "--stage",
        choices=("pretrain", "instruct"),
        default="pretrain",
        help="the kind of config: a `mint pretrain` one (default) or a `mint instruct` one, whose "
        "instruction file's audio is cached too",
    )
    cache.set_defaults(func=_cache_features)
