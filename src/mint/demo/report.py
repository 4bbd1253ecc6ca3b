"""The demo's report: every metric beside its chance level or trivial baseline, plots, examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mint.config import config_to_dict
from mint.demo.config import DemoConfig
from mint.evaluation.report import markdown_table
from mint.storage import atomic_write_text
from mint.training.plots import plot_training_curves

# What `make demo` must reach on held-out clips (issue "Built-in sound-scene corpus and make demo").
TARGETS = {
    "zero_shot_classification_accuracy": 0.70,
    "text_to_audio_R@5": 0.50,
    "qa_accuracy": 0.60,
    "cider_ratio_over_random_captions": 3.0,
}


def _any_in_top(k: int, texts: int, clips: int) -> float:
    """Chance that at least one of a clip's texts/clips captions lands in a random top k of `texts`."""
    per_clip = texts // clips
    miss = 1.0
    for i in range(k):
        miss *= (texts - per_clip - i) / (texts - i)
    return 1.0 - miss


def _headline(results: dict) -> list[dict]:
    atc = results["classify_atc"]
    generative = results["classify_generative"]
    classes = len(atc["options"]["labels"])
    retrieval = results["retrieval"]["metrics"]["atc+atm"]
    atc_retrieval = results["retrieval"]["metrics"]["atc"]
    clips = results["retrieval"]["counts"]["audio"]
    captions = results["captioning"]["metrics"]
    random_captions = results["captioning_random_baseline"]
    qa = results["qa"]
    cider, cider_random = captions["CIDEr-D"], random_captions["CIDEr-D"]
    return [
        {
            "metric": "zero_shot_classification_accuracy",
            "what": f"ATC zero-shot, {classes} classes, {atc['data']['clips_evaluated']} single-event clips",
            "value": atc["metrics"]["accuracy"],
            "reference": 1 / classes,
            "reference_is": "chance",
        },
        {
            "metric": "generative_classification_accuracy",
            "what": "rank classification by LLM log-likelihood",
            "value": generative["metrics"]["accuracy"],
            "reference": 1 / classes,
            "reference_is": "chance",
        },
        {
            "metric": "text_to_audio_R@5",
            "what": f"ATC ranking, {clips} clips",
            "value": atc_retrieval["text_to_audio"]["R@5"],
            "reference": min(1.0, 5 / clips),
            "reference_is": "chance",
        },
        {
            "metric": "text_to_audio_R@5_atm_reranked",
            "what": "ATC, then ATM re-rank of the top-k",
            "value": retrieval["text_to_audio"]["R@5"],
            "reference": min(1.0, 5 / clips),
            "reference_is": "chance",
        },
        {
            "metric": "audio_to_text_R@5",
            "what": "any of the clip's captions in the top 5",
            "value": retrieval["audio_to_text"]["R@5"],
            "reference": _any_in_top(5, results["retrieval"]["counts"]["captions"], clips),
            "reference_is": "chance",
        },
        {
            "metric": "qa_accuracy",
            "what": f"exact match, {qa['questions']} questions",
            "value": qa["accuracy"],
            "reference": qa["majority_baseline_accuracy"],
            "reference_is": "majority answer per question",
        },
        {
            "metric": "CIDEr-D",
            "what": "generated captions vs the clip's references",
            "value": cider,
            "reference": cider_random,
            "reference_is": "caption of a random other clip",
        },
        {
            "metric": "cider_ratio_over_random_captions",
            "what": "CIDEr-D / random-caption CIDEr-D",
            "value": cider / cider_random if cider_random > 0 else float("inf"),
            "reference": 1.0,
            "reference_is": "random captions",
        },
    ]


def _examples(out: Path, results: dict, count: int) -> tuple[list[dict], list[dict]]:
    captions_path = out / "eval" / "captioning" / results["captioning"]["predictions"]
    captions = [json.loads(line) for line in captions_path.read_text().splitlines()[:count]]
    return captions, results["qa"]["examples"][:count]


def write_report(out: Path, config: DemoConfig, results: dict, timings: dict, standin: bool) -> dict:
    plots = {
        "stage1_losses": plot_training_curves(out / "stage1" / "metrics.jsonl", out / "stage1_losses.png"),
        "stage2_losses": plot_training_curves(out / "stage2" / "metrics.jsonl", out / "stage2_losses.png"),
    }
    for name, source in (
        ("confusion_matrix", out / "eval" / "classify-atc" / "confusion_matrix.png"),
        ("recall_at_k", out / "eval" / "retrieval" / "recall_at_k.png"),
    ):
        if source.is_file():
            shutil.copyfile(source, out / f"{name}.png")
            plots[name] = out / f"{name}.png"
    headline = _headline(results)
    captions, answers = _examples(out, results, config.evaluation.examples)
    llm = (
        "stand-in GPT-2 trained on the corpus text (no pretrained LLM available offline)"
        if standin
        else config.llm
    )
    report = {
        "llm": llm,
        "targets": TARGETS,
        "headline": headline,
        "met_targets": {
            row["metric"]: row["value"] >= TARGETS[row["metric"]]
            for row in headline
            if row["metric"] in TARGETS
        },
        "timings_s": timings,
        "results": results,
        "examples": {"captions": captions, "answers": answers},
        "plots": {name: str(path.name) if path else None for name, path in plots.items()},
        "config": config_to_dict(config),
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=str))
    rows = [
        [
            row["metric"],
            row["what"],
            row["value"],
            row["reference"],
            row["reference_is"],
            TARGETS.get(row["metric"], ""),
        ]
        for row in headline
    ]
    lines = [
        "# MINT demo report",
        "",
        f"LLM: {llm}. Every number is measured on held-out clips never seen in training.",
        "",
        markdown_table(["metric", "what", "value", "baseline", "baseline is", "target"], rows),
        "",
        "## Example captions (held-out clips)",
        "",
        markdown_table(
            ["clip", "generated", "a reference"],
            [[c["id"], c["candidate"], c["references"][0]] for c in captions],
        ),
        "",
        "## Example answers",
        "",
        markdown_table(
            ["clip", "question", "answer", "expected"],
            [[a["id"], a["question"], a["answer"], a["expected"]] for a in answers],
        ),
        "",
        "## Time per step (s)",
        "",
        markdown_table(list(timings), [list(timings.values())]),
        "",
    ]
    lines += [f"![{name}]({path.name})" for name, path in plots.items() if path]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return report
