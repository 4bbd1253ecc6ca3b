"""`mint index build`, `mint search` and `mint serve`: an audio folder made searchable, and the HTTP
service with its web page."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mint.errors import ConfigError


def _pipeline(args: argparse.Namespace):
    from mint.inference import MintPipeline

    return MintPipeline.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)


def _index_build(args: argparse.Namespace) -> int:
    from mint.inference import build_index

    if args.workers < 0:
        raise ConfigError(f"--workers: expected 0 or more decoding threads, got {args.workers}")
    report = build_index(
        _pipeline(args),
        args.audio_dir,
        args.index,
        args.workers,
        rebuild=args.rebuild,
        progress=args.progress,
        vectors=args.vectors,
    )
    for skipped in report.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.__dict__ | {"skipped": [s.__dict__ for s in report.skipped]}, indent=2))
    else:
        print(report.summary())
    return 0


def _search(args: argparse.Namespace) -> int:
    from mint.inference import AudioIndex

    if (args.query is None) == (args.audio is None):
        raise ConfigError("mint search: give either a text QUERY or --audio FILE, not both or neither")
    index = AudioIndex.open(args.index)
    query = args.query if args.query is not None else Path(args.audio)
    hits = _pipeline(args).search(query, index, k=args.k, rerank=args.rerank, candidates=args.candidates)
    if args.json:
        print(json.dumps([hit.to_json() | {"file": str(index.root / hit.path)} for hit in hits], indent=2))
        return 0
    for hit in hits:
        match = f"{hit.match:9.4f}" if hit.match is not None else f"{'-':>9}"
        print(f"{hit.rank:3d}  {match}  {hit.similarity:7.4f}  {index.root / hit.path}")
    return 0


def _locate(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top: expected >= 1, got {args.top}")
    from mint.audio.windows import format_span

    windows = _pipeline(args).locate(Path(args.file), args.text)
    best = sorted(windows, key=lambda window: -window.similarity)[: args.top]
    if args.json:
        print(json.dumps([window.__dict__ for window in best], indent=2))
        return 0
    for window in best:
        print(f"{format_span(window.start, window.end)}  {window.similarity:7.4f}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from mint.serving import ServeLimits, create_app
    except ImportError as error:
        raise ConfigError(
            f"mint serve: {error.name} is not installed; install the serve extra: pip install 'mint-audio[serve]'"
        ) from None
    from mint.inference import AudioIndex

    limits = ServeLimits(
        max_upload_mb=args.max_upload_mb,
        max_audio_seconds=args.max_audio_seconds,
        concurrency=args.concurrency,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        queue=args.queue,
        timeout_s=args.timeout,
        body_timeout_s=args.body_timeout,
    )
    pipeline = _pipeline(args)
    index = None
    if args.index:
        index = AudioIndex.open(args.index)
        index.check_model(pipeline.fingerprint)
    app = create_app(pipeline, index, limits)
    print(f"mint serve: http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _model_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a saved model folder")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"clips per batch (default {batch_size})"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="embed an audio folder into a searchable index")
    actions = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", help="add new and changed files, drop deleted ones (unchanged files are not embedded again)"
    )
    build.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder of audio files (searched recursively)")
    build.add_argument(
        "--index",
        required=True,
        metavar="PATH",
        help="the index file (SQLite), created if absent, with its vectors in PATH.vectors/",
    )
    build.add_argument(
        "--rebuild", action="store_true", help="start afresh (another folder, model or --vectors)"
    )
    build.add_argument(
        "--vectors",
        metavar="URL",
        help="keep the vectors in Qdrant: qdrant://HOST:PORT/COLLECTION or qdrant-local:///DIR/COLLECTION "
        "(default: files beside the index; set when the index is created or rebuilt)",
    )
    build.add_argument("--workers", type=int, default=2, help="audio decoding threads; 0 decodes inline")
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    build.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _model_options(build, 16)
    build.set_defaults(func=_index_build)

    search = subparsers.add_parser("search", help="the indexed clips nearest to a text or an example clip")
    search.add_argument("query", nargs="?", metavar="QUERY", help="a text describing the sound")
    search.add_argument("--audio", metavar="FILE", help="an example clip instead of a text")
    search.add_argument("--index", required=True, metavar="PATH", help="built by `mint index build`")
    search.add_argument("--k", type=int, default=10, help="results to show (default 10)")
    search.add_argument(
        "--rerank", type=int, default=32, help="text queries: top ATC candidates re-ranked by ATM (0: none)"
    )
    search.add_argument(
        "--candidates",
        type=int,
        default=512,
        help="clips the candidate index proposes and ATC re-scores exactly (default 512)",
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    _model_options(search, 8)
    search.set_defaults(func=_search)

    locate = subparsers.add_parser(
        "locate", help="where in a recording of any length a text is heard (its best windows, with times)"
    )
    locate.add_argument("file", metavar="FILE")
    locate.add_argument("text", metavar="TEXT", help="a text describing the sound")
    locate.add_argument("--top", type=int, default=5, help="windows to show, best first (default 5)")
    locate.add_argument("--json", action="store_true", help="print the windows as JSON")
    _model_options(locate, 8)
    locate.set_defaults(func=_locate)

    serve = subparsers.add_parser("serve", help="HTTP API and web page (caption, ask, classify, search)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--index", metavar="PATH", help="an index built with the same model, for /search")
    serve.add_argument("--max-upload-mb", type=float, default=25.0, help="largest audio upload (default 25)")
    serve.add_argument(
        "--max-audio-seconds", type=float, default=600.0, help="longest audio upload (default 600)"
    )
    serve.add_argument("--concurrency", type=int, default=1, help="model calls at once (default 1)")
    serve.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="requests of the same kind one model call serves together (default 8; 1: one at a time)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="how long a batch waits for more requests when the model is idle (default 0)",
    )
    serve.add_argument(
        "--queue", type=int, default=8, help="requests that may wait beyond the batches (default 8)"
    )
    serve.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a request may wait (default 120)"
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        help="seconds without a piece of the request body before it is refused (default 10)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    _model_options(serve, 8)
    serve.set_defaults(func=_serve)
