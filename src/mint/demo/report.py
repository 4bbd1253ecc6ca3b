"""The demo's report: every metric beside its chance level or trivial baseline, plots, examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mint.audio.windows import format_span
from mint.config import config_to_dict
from mint.demo.config import DemoConfig
from mint.evaluation.report import markdown_table
from mint.storage import atomic_write_text
from mint.training.plots import plot_training_curves
from mint.weights import REGISTRY
from mint.weights.resolve import PREFIX, is_named_reference

# What `make demo` must reach on held-out clips with real weights (issue "A real MINT on real pretrained
# weights, offline").
TARGETS = {
    "zero_shot_classification_accuracy": 0.80,
    "text_to_audio_R@5": 0.65,
    "qa_accuracy": 0.65,
    "cider_ratio_over_random_captions": 4.0,
    "spoken_word_accuracy": 0.60,
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
    atm = results["retrieval"]["atm"]
    reranked_what = f"ATC, then ATC + {atm['weight']:.3g} x ATM log-odds over the top {atm['k']} (w: {atm['weight_source']})"
    captions = results["captioning"]["metrics"]
    random_captions = results["captioning_random_baseline"]
    qa = results["qa"]
    cider, cider_random = captions["CIDEr-D"], random_captions["CIDEr-D"]
    spoken = results.get("spoken_words")
    spoken_rows = []
    if spoken is not None:
        spoken_rows.append(
            {
                "metric": "spoken_word_accuracy",
                "what": f"'what word is spoken?', {spoken['questions']} clips, voices unseen in training",
                "value": spoken["accuracy"],
                "reference": spoken["chance"],
                "reference_is": "chance (one word of the vocabulary)",
            }
        )
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
        *(
            {
                "metric": f"text_to_audio_R@{k}{suffix}",
                "what": what,
                "value": metrics["text_to_audio"][f"R@{k}"],
                "reference": min(1.0, k / clips),
                "reference_is": "chance",
            }
            for k in (1, 5)
            for suffix, what, metrics in (
                ("", f"ATC ranking, {clips} clips", atc_retrieval),
                ("_atm_reranked", reranked_what, retrieval),
            )
        ),
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
        *spoken_rows,
        *_sequence_rows(results.get("sequence_qa")),
        *_timed_qa_rows(results.get("timed_qa")),
        *_temporal_rows(results.get("temporal")),
    ]


def _sequence_rows(sequence: dict | None) -> list[dict]:
    """Questions about held-out scenes read as the windows of one recording, overall and per form."""
    if sequence is None:
        return []
    rows = [
        {
            "metric": "sequence_qa_accuracy",
            "what": f"exact match, {sequence['questions']} questions about 2-4 scenes read as one recording's windows",
            "value": sequence["accuracy"],
            "reference": sequence["majority_baseline_accuracy"],
            "reference_is": "majority answer per form",
        }
    ]
    for form, scores in sequence["forms"].items():
        rows.append(
            {
                "metric": f"sequence_qa_{form}",
                "what": f"{scores['questions']} '{form}' questions",
                "value": scores["accuracy"],
                "reference": scores["majority_baseline_accuracy"],
                "reference_is": "majority answer per form",
            }
        )
    return rows


def _timed_qa_rows(timed: dict | None) -> list[dict]:
    """The LLM's answers to "when does the X start/end?" on held-out clips (`corpus.timing`)."""
    if timed is None:
        return []
    what = f"{timed['questions']} 'when does ... start/end?' questions, {timed['unparsed']} answers without a time"
    model, baseline = timed["model"], timed["baseline_median_training_time"]
    return [
        {
            "metric": "timed_answer_median_error_s",
            "what": f"lower is better; {what}",
            "value": model["median_error_s"],
            "reference": baseline["median_error_s"],
            "reference_is": "the question's median time in training",
        },
        {
            "metric": "timed_answers_within_1s",
            "what": what,
            "value": model["within_1s"],
            "reference": baseline["within_1s"],
            "reference_is": "the question's median time in training",
        },
    ]


def _temporal_rows(temporal: dict | None) -> list[dict]:
    """Onset error and long-recording retrieval on the held-out long scenes (`mint.evaluation.temporal`)."""
    if temporal is None:
        return []
    onsets, retrieval = temporal["onsets"], temporal["retrieval"]
    recordings = temporal["data"]["clips_evaluated"]
    model, baseline = onsets["model"], onsets["baseline_middle_of_recording"]
    events = f"{onsets['events']} events heard once in their recording, {recordings} long recordings"
    return [
        {
            "metric": "event_onset_median_error_s",
            "what": f"lower is better; {events}",
            "value": model["median_seconds"],
            "reference": baseline["median_seconds"],
            "reference_is": "the middle of the recording",
        },
        {
            "metric": "event_onsets_within_1s",
            "what": events,
            "value": model["within_1s"],
            "reference": baseline["within_1s"],
            "reference_is": "the middle of the recording",
        },
        {
            "metric": "long_recording_R@1",
            "what": f"{retrieval['queries']} event captions, best window per recording",
            "value": retrieval["recording_at_1"],
            "reference": retrieval["recording_chance"],
            "reference_is": "chance",
        },
        {
            "metric": "long_recording_window@1",
            "what": "right recording, and its best window holds half the event or more",
            "value": retrieval["window_at_1"],
            "reference": retrieval["window_chance"],
            "reference_is": "chance (a random window of a right recording)",
        },
    ]


def _timeline_lines(example: dict | None) -> list[str]:
    """The report's example timeline of a held-out long recording: captioned windows beside their events."""
    if example is None:
        return []
    return [
        f"## Example timeline (held-out long recording {example['id']}, {example['events']} events)",
        "",
        markdown_table(
            ["window", "caption", "events really in it"],
            [
                [
                    format_span(part["start"], part["end"]),
                    part["caption"],
                    ", ".join(part["events"]) or "none",
                ]
                for part in example["segments"]
            ],
        ),
        "",
    ]


def weights_used(config: DemoConfig) -> list[dict]:
    """Every named pretrained weight set the demo's model is built from, with its package pins and the
    SHA-256 of each file read from it (what `mint weights fetch` checked)."""
    names = [
        reference.removeprefix(PREFIX)
        for reference in (config.model.encoder.name_or_path, config.llm)
        if is_named_reference(reference)
    ]
    if config.model.bridge.init == "minilm":
        names.append("minilm")
    return [
        {
            "name": REGISTRY[name].name,
            "description": REGISTRY[name].description,
            "packages": [f"{p.name}=={p.version} ({p.license})" for p in REGISTRY[name].packages],
            "files": [{"path": file.path, "sha256": file.sha256} for file in REGISTRY[name].files],
        }
        for name in dict.fromkeys(names)
        if name in REGISTRY
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
        ("timeline", out / "eval" / "temporal" / "timeline.png"),
    ):
        if source.is_file():
            shutil.copyfile(source, out / f"{name}.png")
            plots[name] = out / f"{name}.png"
    headline = _headline(results)
    captions, answers = _examples(out, results, config.evaluation.examples)
    llm = "stand-in GPT-2 trained on the corpus text (llm: standin)" if standin else config.llm
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
        "weights": weights_used(config),
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
        *_timeline_lines(results.get("timeline_example")),
        "## Pretrained weights",
        "",
        markdown_table(
            ["weights", "package", "file", "sha256"],
            [
                [entry["name"], ", ".join(entry["packages"]), file["path"], file["sha256"]]
                for entry in report["weights"]
                for file in entry["files"]
            ],
        ),
        "",
        "## Wall time of each part of the run (s)",
        "",
        markdown_table(list(timings), [list(timings.values())]),
        "",
    ]
    lines += [f"![{name}]({path.name})" for name, path in plots.items() if path]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return report
