"""`mint instruct` (stage 2) and what a stage-2 model does with audio files: `mint caption`, `mint ask`,
`mint classify` (rank classification: each label's log-likelihood as the LLM's answer)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import numpy as np
import torch

from mint.audio.windows import format_span
from mint.cli.run_args import add_run_arguments, print_training_result, run_overrides
from mint.config import load_config
from mint.errors import AudioError, ConfigError, MintError


def _instruct(args: argparse.Namespace) -> int:
    from mint.training.config import InstructConfig
    from mint.training.instruct import run_instruction_tuning

    config = load_config(InstructConfig, args.config, run_overrides(args))
    print_training_result(run_instruction_tuning(config), config.output_dir)
    return 0


def _load_model(args: argparse.Namespace):
    from mint.modeling import MintModel

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected >= 1, got {args.batch_size}")
    model = MintModel.from_pretrained(args.model)
    if model.llm is None:
        raise ConfigError(
            f"--model {args.model}: a stage-1 model (no LLM); this command needs a stage-2 model"
        )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval()


def _read_audio(model, files: list[str]) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Decoded clips and (file, reason) of those that cannot be read. A single file must read, and so
    must at least one of several."""
    from mint.audio.frontend import AudioFrontend, FrontendConfig

    frontend = AudioFrontend(
        FrontendConfig(sample_rate=model.sample_rate, max_seconds=model.config.max_audio_seconds)
    )
    clips, failed = [], []
    for path in files:
        try:
            clips.append((path, frontend.load(path)))
        except MintError as error:
            if len(files) == 1:
                raise
            failed.append((path, str(error)))
    if not clips:
        raise AudioError(f"none of the {len(files)} files could be read (first: {failed[0][1]})")
    return clips, failed


def _batches(model, clips: list[tuple[str, np.ndarray]], size: int) -> Iterator[tuple[list[str], object]]:
    """(paths, AudioFeatures) per batch of `size` clips."""
    from mint.audio.frontend import pad_batch

    device = next(model.bridge.parameters()).device
    with torch.no_grad():
        for start in range(0, len(clips), size):
            chunk = clips[start : start + size]
            waveforms, lengths = pad_batch([waveform for _, waveform in chunk])
            yield [path for path, _ in chunk], model.encode_audio(waveforms.to(device), lengths.to(device))


def _report_failures(failed: list[tuple[str, str]]) -> int:
    for path, reason in failed:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def _generation_kwargs(args: argparse.Namespace) -> dict:
    if args.beams < 1 or args.max_new_tokens < 1:
        raise ConfigError(
            f"--beams and --max-new-tokens: expected >= 1, got {args.beams} and {args.max_new_tokens}"
        )
    settings = {"num_beams": args.beams, "max_new_tokens": args.max_new_tokens, "do_sample": args.sample}
    if args.sample:
        settings.update(temperature=args.temperature, top_p=args.top_p)
    return settings


def _pipeline(args: argparse.Namespace):
    from mint.inference import MintPipeline

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected >= 1, got {args.batch_size}")
    pipeline = MintPipeline.from_pretrained(
        args.model, device=args.device or "auto", batch_size=args.batch_size
    )
    if not pipeline.has_llm:
        raise ConfigError(
            f"--model {args.model}: a stage-1 model (no LLM); this command needs a stage-2 model"
        )
    return pipeline


def _segments(args: argparse.Namespace, pipeline, settings: dict) -> int:
    """`--segments N`: each file's timeline, one line per captioned window: PATH, its span, the caption."""
    if args.segments < 1:
        raise ConfigError(f"--segments: expected >= 1, got {args.segments}")
    failed: list[tuple[str, str]] = []
    for path in args.files:
        try:
            segments = pipeline.caption_segments(path, args.segments, args.instruction, **settings)
        except MintError as error:
            if len(args.files) == 1:
                raise
            failed.append((path, str(error)))
            continue
        for segment in segments:
            print(f"{path}\t{format_span(segment.start, segment.end)}\t{segment.text}")
    return _report_failures(failed)


def _caption(args: argparse.Namespace) -> int:
    """Captions through `MintPipeline.caption`, so a file longer than the model's clip is read window by
    window (`model.windowing`); a batch with an unreadable file is captioned file by file to skip it.
    `--segments N`: a timeline of captions instead (`MintPipeline.caption_segments`)."""
    settings = _generation_kwargs(args)
    pipeline = _pipeline(args)
    if args.segments is not None:
        return _segments(args, pipeline, settings)
    failed: list[tuple[str, str]] = []
    for start in range(0, len(args.files), args.batch_size):
        part = args.files[start : start + args.batch_size]
        try:
            captioned = list(zip(part, pipeline.caption(part, args.instruction, **settings), strict=True))
        except MintError:
            if len(args.files) == 1:
                raise
            captioned = []
            for path in part:
                try:
                    captioned.append((path, pipeline.caption(path, args.instruction, **settings)))
                except MintError as error:
                    failed.append((path, str(error)))
        for path, text in captioned:
            print(f"{path}\t{text}")
    if len(failed) == len(args.files):
        raise AudioError(f"none of the {len(args.files)} files could be read (first: {failed[0][1]})")
    return _report_failures(failed)


def _ask(args: argparse.Namespace) -> int:
    print(_pipeline(args).ask(args.file, args.question, **_generation_kwargs(args)))
    return 0


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(
            f"expected two or more distinct comma-separated labels, got {text!r}"
        )
    return labels


def _classify(args: argparse.Namespace) -> int:
    from mint.data.instructions import evaluation_instruction

    model = _load_model(args)
    instruction = args.instruction or evaluation_instruction("classify")
    clips, failed = _read_audio(model, args.files)
    for paths, audio in _batches(model, clips, args.batch_size):
        scores = model.score(audio, [instruction] * len(paths), args.labels, normalise=args.normalise)
        for path, row in zip(paths, scores.tolist(), strict=True):
            ranked = sorted(zip(args.labels, row, strict=True), key=lambda item: -item[1])
            print(f"{path}\t{ranked[0][0]}")
            for label, value in ranked:
                print(f"  {value:10.4f}  {label}")
    return _report_failures(failed)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="DIR", help="a stage-2 model saved by `mint instruct`"
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch")


def _generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beams", type=int, default=1, help="beam search width (1: greedy)")
    parser.add_argument("--max-new-tokens", type=int, default=30)
    parser.add_argument("--sample", action="store_true", help="sample instead of searching")
    parser.add_argument("--temperature", type=float, default=1.0, help="with --sample")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling, with --sample")


def register(subparsers: argparse._SubParsersAction) -> None:
    instruct = subparsers.add_parser("instruct", help="stage 2: instruction tuning against a frozen LLM")
    add_run_arguments(instruct, "configs/instruct/tiny.yaml")
    instruct.set_defaults(func=_instruct)

    caption = subparsers.add_parser("caption", help="caption audio files with a stage-2 model")
    caption.add_argument("files", nargs="+", metavar="FILE")
    caption.add_argument("--instruction", help="instead of the captioning template used in training")
    caption.add_argument(
        "--segments",
        type=int,
        metavar="N",
        help="a timeline instead: the N windows that differ most from the recording's typical one, each "
        "captioned with its time span",
    )
    _model_options(caption)
    _generation_options(caption)
    caption.set_defaults(func=_caption)

    ask = subparsers.add_parser("ask", help="answer a question about an audio file")
    ask.add_argument("file", metavar="FILE")
    ask.add_argument("question", metavar="QUESTION")
    _model_options(ask)
    _generation_options(ask)
    ask.set_defaults(func=_ask)

    classify = subparsers.add_parser(
        "classify", help="rank labels by their log-likelihood as the LLM's answer (zero-shot)"
    )
    classify.add_argument("files", nargs="+", metavar="FILE")
    classify.add_argument("--labels", required=True, type=_labels, metavar="A,B,C")
    classify.add_argument("--instruction", help="instead of the classification template used in training")
    classify.add_argument(
        "--normalise", action="store_true", help="divide each label's log-likelihood by its token count"
    )
    _model_options(classify)
    classify.set_defaults(func=_classify)
