"""`mint eval`: zero-shot classification, retrieval and captioning of a manifest, caption metrics, and
event onsets and retrieval in long recordings.

Every evaluation writes results.json, summary.md and its plots into --out.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mint.evaluation.retrieve import RetrieveOptions


def _folds(text: str) -> list[int]:
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fold numbers like 1,2,3, got {text!r}"
        ) from None
    if not folds:
        raise argparse.ArgumentTypeError("expected at least one fold number")
    return folds


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="JSONL manifest of the clips (see `mint data prepare`)")
    parser.add_argument("--model", required=True, metavar="DIR", help="saved model folder")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for results.json, summary.md, plots"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="audio decoding threads; 0 decodes inline")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--folds", type=_folds, metavar="1,2,3", help="only clips of these folds")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N (selected) clips")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _selection(args: argparse.Namespace) -> dict:
    return {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": args.device,
        "folds": args.folds,
        "limit": args.limit,
        "progress": args.progress,
    }


def _classify(args: argparse.Namespace) -> int:
    from mint.evaluation.classify import ClassifyOptions, read_labels, read_templates, run_classification

    given = {}
    if args.templates:
        given["templates"] = read_templates(args.templates)
    if args.instruction:
        given["instruction"] = args.instruction
    options = ClassifyOptions(
        method=args.method,
        labels=read_labels(args.labels) if args.labels else None,
        normalise=args.normalise,
        rerank=args.rerank,
        atm_weight=args.atm_weight,
        **given,
        **_selection(args),
    )
    results = run_classification(args.manifest, args.model, args.out, options)
    metrics = results["metrics"]
    if results["multi_label"]:
        print(f"mAP {metrics['mAP']:.4f}, top-1 accuracy {metrics['top1_accuracy']:.4f}")
    else:
        print(f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    reranked = results["reranked"]
    if reranked:
        figure = "mAP" if results["multi_label"] else "accuracy"
        print(
            f"re-ranked top {reranked['k']}: {figure} {reranked['metrics'][figure]:.4f} "
            f"(weight {reranked['weight']:.4g}, {reranked['weight_source']})"
        )
    _print_footer(results, args.out)
    return 0


def _retrieve_options(args: argparse.Namespace, atm_weight: float | None = None) -> RetrieveOptions:
    """Options of `_ranking`'s arguments and the common selection (the module loads on first use: the CLI
    starts without importing torch)."""
    from mint.evaluation.retrieve import RetrieveOptions

    return RetrieveOptions(
        k=args.k, pair_batch_size=args.pair_batch_size, atm_weight=atm_weight, **_selection(args)
    )


def _retrieve(args: argparse.Namespace) -> int:
    from mint.evaluation.retrieve import run_retrieval

    results = run_retrieval(args.manifest, args.model, args.out, _retrieve_options(args, args.atm_weight))
    for method, metrics in results["metrics"].items():
        for direction, values in metrics.items():
            print(
                f"{method:8s} {direction:14s} R@1 {values['R@1']:.4f}  R@5 {values['R@5']:.4f}  "
                f"R@10 {values['R@10']:.4f}  mAP@10 {values['mAP@10']:.4f}  medR {values['median_rank']:g}"
            )
    atm = results["atm"]
    print(
        f"ATM pair evaluations: {atm['pair_evaluations']} (k={atm['k']}); "
        f"weight {atm['weight']:.4g} ({atm['weight_source']})"
    )
    _print_footer(results, args.out)
    return 0


def _calibrate_rerank(args: argparse.Namespace) -> int:
    from mint.evaluation.retrieve import calibrate_rerank

    options = _retrieve_options(args)
    results = calibrate_rerank(args.manifest, args.model, args.out, options, save=not args.dry_run)
    print(
        f"re-ranking weight {results['weight']:.4g} (best on this split: {results['best_weight']:.4g}, "
        f"{results['gain_over_atc']:+.4f} over ATC alone, standard error {results['gain_standard_error']:.4f})"
    )
    print(f"saved into {results['saved_to']}" if results["saved_to"] else "not saved (--dry-run)")
    _print_footer(results, args.out)
    return 0


def _caption(args: argparse.Namespace) -> int:
    from mint.evaluation.captioning import CaptionOptions, run_captioning

    given = {"instruction": args.instruction} if args.instruction else {}
    options = CaptionOptions(
        num_beams=args.beams,
        max_new_tokens=args.max_new_tokens,
        spice_jar=args.spice_jar,
        **given,
        **_selection(args),
    )
    results = run_captioning(args.manifest, args.model, args.out, options)
    print(json.dumps({key: value for key, value in results["metrics"].items() if key != "unavailable"}))
    _print_footer(results, args.out)
    return 0


def _caption_metrics(args: argparse.Namespace) -> int:
    from mint.evaluation.metrics import caption_metrics_from_jsonl

    print(json.dumps(caption_metrics_from_jsonl(args.file, args.spice_jar), indent=2))
    return 0


def _temporal(args: argparse.Namespace) -> int:
    from mint.evaluation.temporal import TemporalOptions, run_temporal

    options = TemporalOptions(
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        limit=args.limit,
        progress=args.progress,
    )
    results = run_temporal(args.manifest, args.model, args.out, options)
    onsets, retrieval = results["onsets"], results["retrieval"]
    for name, errors in (("mint", onsets["model"]), ("middle", onsets["baseline_middle_of_recording"])):
        print(
            f"onsets {name:6s} median error {errors['median_seconds']} s, within 1 s {errors['within_1s']} "
            f"({onsets['events']} events, {onsets['ambiguous_events']} repeated ones left out)"
        )
    print(
        f"retrieval right recording @1 {retrieval['recording_at_1']:.4f} (chance {retrieval['recording_chance']:.4f}), "
        f"right window @1 {retrieval['window_at_1']:.4f} (chance {retrieval['window_chance']:.4f})"
    )
    _print_footer(results, args.out)
    return 0


def _ranking(parser: argparse.ArgumentParser) -> None:
    """The options of ATC ranking with ATM re-ranking that retrieval and its calibration share."""
    parser.add_argument("--k", type=int, default=128, help="items per query re-ranked by ATM (default 128)")
    parser.add_argument("--pair-batch-size", type=int, default=64, help="ATM pairs per forward pass")


def _atm_weight(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--atm-weight",
        type=float,
        metavar="W",
        help="re-ranking score = ATC similarity + W x ATM log-odds (default: the model's calibrated weight)",
    )


def _print_footer(results: dict, out: str) -> None:
    skipped = results["skipped"]
    if skipped["count"]:
        names = ", ".join(clip["id"] for clip in skipped["first"][:5])
        print(f"skipped {skipped['count']} clip(s) {skipped['by_reason']}: {names}")
    print(f"results written to {out}")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "eval", help="evaluate a model: classify, retrieve, caption", description=__doc__
    )
    actions = group.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    classify = actions.add_parser(
        "classify",
        help="zero-shot classification (ATC prompt ensemble or LLM rank classification)",
        description="Zero-shot classification of the manifest's clips into its labels: accuracy, macro-F1, "
        "per-class table and confusion matrix (mAP for multi-label manifests).",
    )
    _common(classify)
    classify.add_argument("--method", choices=("atc", "generative"), default="atc")
    classify.add_argument(
        "--labels", metavar="FILE", help="class labels, one per line (default: the manifest's)"
    )
    classify.add_argument(
        "--templates", metavar="FILE", help="ATC prompt templates, one per line with {label}"
    )
    classify.add_argument("--instruction", help="generative: the classification instruction given to the LLM")
    classify.add_argument(
        "--normalise", action="store_true", help="generative: length-normalise the label log-likelihoods"
    )
    classify.add_argument(
        "--rerank",
        type=int,
        default=0,
        metavar="K",
        help="atc: also re-score each clip's top K classes with ATM and report both (default 0: ATC alone)",
    )
    _atm_weight(classify)
    classify.set_defaults(func=_classify)

    retrieve = actions.add_parser(
        "retrieve",
        help="audio-text retrieval: ATC ranking, ATM re-ranking of the top k",
        description="Audio<->text retrieval over the manifest's clips and captions (AudioCaps/Clotho "
        "protocol): R@1/5/10, mAP@10, median and mean rank for ATC and ATC+ATM.",
    )
    _common(retrieve)
    _ranking(retrieve)
    _atm_weight(retrieve)
    retrieve.set_defaults(func=_retrieve)

    calibrate = actions.add_parser(
        "calibrate-rerank",
        help="choose the ATM re-ranking weight on a validation manifest and save it with the model",
        description="Rank a validation manifest (never the test one) by ATC, re-rank the top k with every "
        "weight of a grid, and write the best one (0 unless it beats ATC alone by more than one standard "
        "error) into the model's config, where retrieval, search and the server read it.",
    )
    _common(calibrate)
    _ranking(calibrate)
    calibrate.add_argument("--dry-run", action="store_true", help="report the weight without saving it")
    calibrate.set_defaults(func=_calibrate_rerank)

    caption = actions.add_parser(
        "caption",
        help="generate captions with a stage-2 model and score them",
        description="Caption each clip (beam search) and score against the manifest's captions.",
    )
    _common(caption)
    caption.add_argument("--instruction", help="the captioning instruction given to the LLM")
    caption.add_argument("--beams", type=int, default=5, help="beam width (default 5)")
    caption.add_argument("--max-new-tokens", type=int, default=30)
    caption.add_argument("--spice-jar", metavar="PATH", help="spice-1.0.jar (with CoreNLP in lib/) for SPICE")
    caption.set_defaults(func=_caption)

    temporal = actions.add_parser(
        "temporal",
        help="event onsets and recording/window retrieval in long recordings",
        description="For a manifest of long recordings with timed 'events': each event heard once in its "
        "recording is placed by ATC similarity over dense windows (median onset error, share within 1 s, "
        "beside answering the middle of the recording), and each event caption retrieves a recording and "
        "its best window. Writes results.json, summary.md, onsets.jsonl and timeline.png.",
    )
    temporal.add_argument("manifest", help="JSONL manifest with 'events' (see `mint data synth-long`)")
    temporal.add_argument("--model", required=True, metavar="DIR", help="saved model folder")
    temporal.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    temporal.add_argument(
        "--overlap", type=float, default=0.8, help="overlap of the dense windows that place onsets (0.8)"
    )
    temporal.add_argument("--batch-size", type=int, default=16, help="windows per batch (default 16)")
    temporal.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    temporal.add_argument("--limit", type=int, metavar="N", help="only the first N recordings")
    temporal.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    temporal.set_defaults(func=_temporal)

    metrics = actions.add_parser(
        "caption-metrics",
        help="caption metrics of a JSONL file of {id, candidate, references}",
        description="Print BLEU, METEOR, ROUGE-L, CIDEr-D (and SPICE/SPIDEr with --spice-jar) as JSON.",
    )
    metrics.add_argument("file", help='JSON lines: {"id", "candidate", "references": [...]}')
    metrics.add_argument("--spice-jar", metavar="PATH", help="spice-1.0.jar (with CoreNLP in lib/) for SPICE")
    metrics.set_defaults(func=_caption_metrics)
