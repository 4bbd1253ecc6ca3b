"""`mint data`: dataset preparation. `mint data prepare FORMAT ROOT --out MANIFEST` writes a manifest."""

from __future__ import annotations

import argparse

from mint.data.loaders import LOADERS, prepare


def _folds(text: str) -> frozenset[int]:
    try:
        folds = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fold numbers like 1,2,3, got {text!r}"
        ) from None
    if not folds:
        raise argparse.ArgumentTypeError("expected at least one fold number")
    return folds


def _prepare(args: argparse.Namespace) -> int:
    report = prepare(
        args.format,
        args.root,
        args.out,
        check_audio=args.check_audio,
        split=args.split,
        folds=args.folds,
        audio_dir=args.audio_dir,
    )
    print(report.summary())
    # An empty manifest is never what was wanted; a non-zero status lets scripts stop here.
    return 0 if report.written else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare dataset manifests", description=__doc__)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    parser = actions.add_parser(
        "prepare",
        help="write a JSONL manifest from a published dataset layout",
        description="Read a dataset in its published layout and write the project's JSONL manifest. "
        "Clips whose audio is missing or unreadable are skipped and listed.",
    )
    parser.add_argument("format", choices=sorted(LOADERS), help="dataset layout")
    parser.add_argument("root", help="dataset folder (or its table / JSON / manifest file)")
    parser.add_argument("--out", required=True, metavar="MANIFEST", help="JSONL manifest to write")
    parser.add_argument(
        "--no-check-audio",
        dest="check_audio",
        action="store_false",
        help="only check that audio files exist; do not open them or record durations",
    )
    parser.add_argument("--folds", type=_folds, metavar="1,2,3", help="keep only these folds")
    parser.add_argument(
        "--split", help="keep this split (AudioCaps, Clotho, ...) or label every clip with it"
    )
    parser.add_argument("--audio-dir", metavar="DIR", help="audio folder, when not where the layout puts it")
    parser.set_defaults(func=_prepare)
