"""`mint data`: dataset preparation.

`mint data prepare FORMAT ROOT --out MANIFEST` writes a manifest;
`mint data shard MANIFEST --out DIR --shard-size N` packs it into WebDataset tar shards;
`mint data synth-long --out DIR --recordings N` generates long recordings with timed events.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

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


def _synth_long(args: argparse.Namespace) -> int:
    from mint.data.synth.long_scenes import LongSceneSpec, generate_long_corpus

    spec = LongSceneSpec(
        num_recordings=args.recordings,
        seed=args.seed,
        sample_rate=args.sample_rate,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        events_per_minute=args.events_per_minute,
        event_kinds=args.kinds,
    )
    out = generate_long_corpus(spec, args.out, workers=args.workers, split=args.split)
    print(f"{spec.num_recordings} long recordings in {out / 'audio'}; manifest {out / f'{args.split}.jsonl'}")
    return 0


def _kinds(text: str) -> list[str]:
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    if not kinds:
        raise argparse.ArgumentTypeError("expected comma-separated event kinds like siren,knock")
    return kinds


def _integer_at_least(least: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= `least`, described as `what` in its error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_non_negative = _integer_at_least(0, "a non-negative integer")
_positive = _integer_at_least(1, "a positive integer")


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

    long = actions.add_parser(
        "synth-long",
        help="generate long recordings (minutes) of timed events with silences between them",
        description="Write N recordings of background noise with single sound events separated by at least "
        "1 s of silence (mint.data.synth.long_scenes), as 16-bit WAVs under DIR/audio, and a manifest "
        "DIR/<split>.jsonl whose records list each event's onset and offset and ask when things happen. "
        "Recording i depends only on (seed, i); a rerun keeps complete files.",
    )
    long.add_argument("--out", required=True, metavar="DIR", help="folder for audio/ and the manifest")
    long.add_argument("--recordings", type=_positive, required=True, metavar="N", help="how many recordings")
    long.add_argument(
        "--min-seconds",
        type=float,
        default=60.0,
        help="shortest recording in seconds (default 60, at least 5)",
    )
    long.add_argument(
        "--max-seconds", type=float, default=600.0, help="longest recording in seconds (default 600)"
    )
    long.add_argument(
        "--events-per-minute",
        type=float,
        default=4.0,
        help="expected events per minute (default 4, at most 20)",
    )
    long.add_argument(
        "--kinds", type=_kinds, metavar="KIND,KIND", help="event kinds to draw from (default all)"
    )
    long.add_argument("--seed", type=_non_negative, default=0, help="corpus seed (default 0)")
    long.add_argument("--sample-rate", type=int, default=16000, help="sample rate in Hz (default 16000)")
    long.add_argument("--split", default="test", help="split name of the manifest (default: test)")
    long.add_argument("--workers", type=_positive, default=2, help="processes rendering audio (default 2)")
    long.set_defaults(func=_synth_long)
