"""`mint demo`: the whole of MINT on one laptop, on a procedural corpus (what `make demo` runs)."""

from __future__ import annotations

import argparse

from mint.config import load_config


def _number(value: float | None) -> str:
    """A figure to three decimals; 'n/a' where there is none (a median of answers mostly without a time)."""
    return "n/a" if value is None else f"{value:.3f}"


def _demo(args: argparse.Namespace) -> int:
    from mint.demo.config import DemoConfig
    from mint.demo.run import run_demo

    overrides = list(args.overrides)
    if args.llm:
        overrides.append(f"llm={args.llm}")
    if args.out:
        overrides.append(f"output_dir={args.out}")
    config = load_config(DemoConfig, args.config, overrides)
    report = run_demo(config)
    print(f"\nMINT demo ({report['llm']})")
    for row in report["headline"]:
        print(
            f"  {row['metric']:<38} {_number(row['value'])}   ({row['reference_is']}: {_number(row['reference'])})"
        )
    print("\nExample captions:")
    for example in report["examples"]["captions"]:
        print(f"  {example['id']}: {example['candidate']!r}  (reference: {example['references'][0]!r})")
    print("Example answers:")
    for example in report["examples"]["answers"]:
        print(f"  {example['question']} -> {example['answer']!r} (expected {example['expected']!r})")
    print(f"\nReport: {config.output_dir}/report.md and report.json")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="corpus -> stage 1 -> stage 2 -> evaluation on held-out clips")
    demo.add_argument("--config", default=None, help="YAML demo config (default: the built-in defaults)")
    demo.add_argument(
        "--llm",
        default=None,
        help="the frozen LLM (default weights:smollm2-135m-instruct): named weights, a local directory, a "
        "GGUF file or a hub id; 'standin' trains a small GPT-2 on the corpus text instead (fast, no weights)",
    )
    demo.add_argument("--out", default=None, help="output directory (default runs/demo)")
    demo.add_argument("overrides", nargs="*", help="dotted overrides, e.g. stage1.max_steps=100")
    demo.set_defaults(func=_demo)
