"""`mint data`: dataset preparation.

`mint data prepare FORMAT ROOT --out MANIFEST` writes a manifest;
`mint data shard MANIFEST --out DIR --shard-size N` packs it into WebDataset tar shards.
"""

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


def _shard(args: argparse.Namespace) -> int:
    from mint.data.manifest import iter_manifest
    from mint.data.shards import write_shards

    report = write_shards(iter_manifest(args.manifest), args.out, args.shard_size, prefix=args.prefix)
    print(report.summary())
    return 0 if report.written else 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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

    shard = actions.add_parser(
        "shard",
        help="pack a manifest into WebDataset tar shards with an index",
        description="Write the manifest's audio (original bytes) and metadata as WebDataset tar shards "
        "(<key>.<ext> + <key>.json per clip) and index.json listing the shards and their sample counts. "
        "Clips whose audio is missing or unreadable are skipped and listed.",
    )
    shard.add_argument("manifest", help="JSONL manifest (from `mint data prepare`)")
    shard.add_argument("--out", required=True, metavar="DIR", help="folder for the shards and index.json")
    shard.add_argument(
        "--shard-size", type=_positive, default=1000, metavar="N", help="samples per shard (default 1000)"
    )
    shard.add_argument("--prefix", default="shard", help="shard file name prefix (default: shard)")
    shard.set_defaults(func=_shard)
