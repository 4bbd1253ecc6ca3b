"""Zero-shot sound classification of a manifest: ATC prompt ensembles or LLM rank classification.

* ATC (`method="atc"`): every class label is written into each prompt template ("the sound of a
  {label}", ...); the class embedding is the mean of the templates' L2-normalised text embeddings,
  normalised again. A clip's score for a class is its ATC similarity (max over queries) and the
  prediction the best-scoring class.
  With `rerank` > 0 each clip's top `rerank` classes are re-scored as retrieval re-ranks
  (`mint.evaluation.retrieve`): ATC similarity + w x ATM log-odds, the log-odds being the mean over the
  templates of the clip paired with each prompt, w the model's calibrated `rerank_weight` unless given.
  The results then hold ATC's metrics and the re-ranked ones side by side.
* Generative (`method="generative"`, stage-2 models only): the class is the label whose text has the
  highest log-likelihood as the LLM's answer to a fixed classification instruction (`model.score`), so
  no free text is ever matched against label names.

Label names are turned into the text used in prompts and as LLM answers by `label_text` (shared with
the label captions of stage-1 training, `mint.data.pairs`): underscores become spaces, runs of white
space collapse, and words are lower-cased except all-capital ones (acronyms), so "Dog bark" ->
"dog bark", "chirping_birds" -> "chirping birds", "TV" stays "TV".

Labels are the sorted set of labels in the manifest, or a given list; clips without a label in the
list are skipped and reported. A manifest with any multi-label clip is scored as multi-label: mAP
over classes, per-class AP and top-1 accuracy (the best class is one of the clip's labels);
otherwise accuracy, macro-F1, the per-class table and a confusion matrix.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mint.data.instructions import TEMPLATES
from mint.data.manifest import ManifestRecord
from mint.data.pairs import LABEL_SLOT, label_text
from mint.errors import ConfigError, DataError
from mint.evaluation.metrics import classification_metrics, mean_average_precision
from mint.evaluation.plots import plot_confusion_matrix
from mint.evaluation.report import (
    header_markdown,
    markdown_table,
    run_identity,
    write_jsonl,
    write_report,
)
from mint.evaluation.retrieve import rerank_rows, rerank_weight
from mint.evaluation.selection import select_records
from mint.inference.embedding import (
    DEFAULT_TEMPLATES,
    AudioStream,
    SkippedClip,
    class_embeddings,
    embed_audio,
    load_model,
    prompt_texts,
    resolve_device,
)
from mint.modeling import MintModel
from mint.modeling.outputs import AudioFeatures
from mint.objectives.contrastive import audio_text_similarity
from mint.objectives.matching import match_log_odds

METHODS = ("atc", "generative")
# The fixed evaluation instruction: the first classify template of stage-2 training.
DEFAULT_INSTRUCTION = TEMPLATES["classify"][0]
CONFUSION_PNG = "confusion_matrix.png"
RERANKED_CONFUSION_PNG = "confusion_matrix_reranked.png"
PREDICTIONS_NAME = "predictions.jsonl"
TOP_PREDICTIONS = 5


def _lines(path: str | os.PathLike, what: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the {what} file: {error}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_templates(path: str | os.PathLike) -> list[str]:
    """Prompt templates, one per line, each holding `{label}`; blank lines and `#` comments ignored."""
    templates = _lines(path, "templates")
    if not templates:
        raise ConfigError(f"{path}: no templates; expected one per line, each containing {LABEL_SLOT}")
    for number, template in enumerate(templates, start=1):
        if LABEL_SLOT not in template:
            raise ConfigError(f"{path}: template {number} {template!r} lacks the {LABEL_SLOT} slot")
    return templates


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class labels, one per line (names may hold commas, as AudioSet's do); duplicates refused."""
    labels = _lines(path, "labels")
    if not labels:
        raise ConfigError(f"{path}: no labels; expected one class label per line")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"{path}: label(s) listed more than once: {repeated[:5]}")
    return labels


@dataclass
class ClassifyOptions:
    method: str = "atc"
    labels: list[str] | None = None
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    instruction: str = DEFAULT_INSTRUCTION
    # Generative: divide each label's log-likelihood by its token count.
    normalise: bool = False
    batch_size: int = 16
    text_batch_size: int = 64
    workers: int = 2
    device: str = "auto"
    folds: list[int] | None = None
    limit: int | None = None
    progress: bool = True
    # ATC: classes per clip re-scored with ATM (0: ATC alone) and the weight w of ATM's log-odds in that
    # score (None: the model's `rerank_weight`).
    rerank: int = 0
    atm_weight: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.rerank < 0 or (self.rerank and self.method != "atc"):
            raise ConfigError(
                f"rerank: expected 0, or a positive number of classes with method atc, got {self.rerank}"
            )
        if self.atm_weight is not None and not (math.isfinite(self.atm_weight) and self.atm_weight >= 0):
            raise ConfigError(f"atm_weight: expected a finite number >= 0, got {self.atm_weight}")
        if not self.templates or any(LABEL_SLOT not in template for template in self.templates):
            raise ConfigError(f"templates: expected a non-empty list, each containing {LABEL_SLOT}")


@torch.no_grad()
def generative_scores(
    stream: AudioStream, labels: list[str], instruction: str, normalise: bool
) -> tuple[torch.Tensor, list[int]]:
    """[N, C] log-likelihood of each label's text as the LLM's answer, and the clips' record positions."""
    candidates = [label_text(label) for label in labels]
    chunks, indices = [], []
    for batch in stream:
        instructions = [instruction] * len(batch.indices)
        scores = stream.model.score(batch.audio, instructions, candidates, normalise=normalise)
        chunks.append(scores.float().cpu())
        indices.extend(batch.indices)
    if not chunks:
        raise DataError(f"no readable audio among the {len(stream.records)} clips (see the skipped list)")
    return torch.cat(chunks), indices


def _targets(
    records: list[ManifestRecord], labels: list[str]
) -> tuple[list[ManifestRecord], list[list[int]], list[SkippedClip]]:
    """Records that have at least one listed label, their label indices, and the others as skipped."""
    position = {label: index for index, label in enumerate(labels)}
    kept, targets, skipped = [], [], []
    for record in records:
        known = [position[label] for label in record.labels if label in position]
        if not record.labels:
            skipped.append(SkippedClip(record.id, record.audio, "no labels"))
        elif not known:
            skipped.append(
                SkippedClip(record.id, record.audio, "label not in the class list", str(record.labels))
            )
        else:
            kept.append(record)
            targets.append(sorted(set(known)))
    return kept, targets, skipped


@dataclass
class Reranking:
    """ATM's share of a re-ranked classification: each clip's top classes under ATC and their log-odds."""

    log_odds: np.ndarray  # [N, C], NaN outside `top`
    top: np.ndarray  # [N, k] class indices


@torch.no_grad()
def atc_and_atm_scores(
    stream: AudioStream, classes: torch.Tensor, prompts: list[str], rerank: int
) -> tuple[np.ndarray, Reranking, list[int]]:
    """[N, C] ATC similarities, ATM's scores of each clip's top `rerank` classes under ATC (the mean
    log-odds over each class's templates) and the clips' record positions. `prompts` holds each class's
    templated texts, class by class (`prompt_texts`)."""
    model = stream.model
    num_classes = classes.shape[0]
    k = min(rerank, num_classes)
    # Every prompt is tokenised once; each clip's pairs are its top classes' rows.
    ids, mask = model.tokenize(prompts)
    ids, mask = ids.view(num_classes, -1, ids.shape[-1]), mask.view(num_classes, -1, mask.shape[-1])
    similarities, log_odds, tops, indices = [], [], [], []
    for batch in stream:
        similarity = audio_text_similarity(model.audio_embeddings(batch.audio).float().cpu(), classes)
        atm = torch.full(similarity.shape, float("nan"), dtype=torch.float64)
        top = similarity.topk(k, dim=1).indices
        for row in range(similarity.shape[0]):
            pair_ids, pair_mask = ids[top[row]].flatten(0, 1), mask[top[row]].flatten(0, 1)
            pair_audio = AudioFeatures(
                batch.audio.features[row : row + 1].expand(len(pair_ids), -1, -1),
                batch.audio.mask[row : row + 1].expand(len(pair_ids), -1),
            )
            per_prompt = (
                match_log_odds(model.match_logits(pair_audio, pair_ids, pair_mask).float()).double().cpu()
            )
            atm[row, top[row]] = per_prompt.view(k, -1).mean(dim=1)
        similarities.append(similarity)
        log_odds.append(atm)
        tops.append(top)
        indices.extend(batch.indices)
    if not similarities:
        raise DataError(f"no readable audio among the {len(stream.records)} clips (see the skipped list)")
    reranking = Reranking(torch.cat(log_odds).numpy(), torch.cat(tops).numpy())
    return torch.cat(similarities).numpy(), reranking, indices


def _scores(
    model: MintModel, records: list[ManifestRecord], labels: list[str], options: ClassifyOptions
) -> tuple[np.ndarray, Reranking | None, list[int], list[SkippedClip]]:
    """Class scores [N, C], the ATM scores of the re-ranked classes (None without re-ranking), the clips'
    record positions and the unreadable clips."""
    stream = AudioStream(model, records, options.batch_size, options.workers, options.progress, "classify")
    if options.method == "generative":
        if getattr(model.config, "llm", None) is None:
            raise ConfigError(
                "method generative: the model has no LLM (a stage-1 model); rank classification needs a "
                "stage-2 model, or use --method atc"
            )
        scores, indices = generative_scores(stream, labels, options.instruction, options.normalise)
        return scores.numpy(), None, indices, stream.skipped
    classes = class_embeddings(model, labels, options.templates, options.text_batch_size)
    if options.rerank:
        prompts = prompt_texts(labels, options.templates)
        similarity, reranking, indices = atc_and_atm_scores(stream, classes, prompts, options.rerank)
        return similarity, reranking, indices, stream.skipped
    audio = embed_audio(stream)
    return audio_text_similarity(audio.embeddings, classes).numpy(), None, audio.indices, audio.skipped


def _single_label_metrics(
    targets: list[list[int]], scores: np.ndarray, labels: list[str], out: Path, plot_name: str = CONFUSION_PNG
) -> dict:
    truth = np.array([target[0] for target in targets])
    metrics = classification_metrics(truth, scores.argmax(axis=1), labels)
    plotted = plot_confusion_matrix(np.array(metrics["confusion_matrix"]), labels, out / plot_name)
    metrics["plots"] = {"confusion_matrix": plot_name if plotted else None}
    return metrics


def _multi_label_metrics(targets: list[list[int]], scores: np.ndarray, labels: list[str]) -> dict:
    truth = np.zeros(scores.shape, dtype=np.int64)
    for row, target in enumerate(targets):
        truth[row, target] = 1
    average = mean_average_precision(truth, scores)
    best = scores.argmax(axis=1)
    return {
        "mAP": average["mAP"],
        "top1_accuracy": float(truth[np.arange(len(best)), best].mean()),
        "per_class": {
            label: {"AP": average["per_class"][index], "positives": int(truth[:, index].sum())}
            for index, label in enumerate(labels)
        },
        "classes_without_positives": [labels[index] for index in average["excluded_classes"]],
        "plots": {},
    }


def _summary(results: dict) -> str:
    metrics = results["metrics"]
    lines = header_markdown(f"Zero-shot classification ({results['method']})", results)
    if results["multi_label"]:
        lines += [f"**mAP** {metrics['mAP']:.4f} · **top-1 accuracy** {metrics['top1_accuracy']:.4f}", ""]
        rows = [[name, row["AP"], row["positives"]] for name, row in metrics["per_class"].items()]
        lines.append(markdown_table(["class", "AP", "positives"], rows))
    else:
        lines += [f"**accuracy** {metrics['accuracy']:.4f} · **macro-F1** {metrics['macro_f1']:.4f}", ""]
    reranked = results["reranked"]
    if reranked:
        again = reranked["metrics"]
        figure = "mAP" if results["multi_label"] else "accuracy"
        lines += [
            f"Re-ranked (each clip's top {reranked['k']} classes by ATC similarity + {reranked['weight']:.4g} x "
            f"ATM log-odds; weight: {reranked['weight_source']}): **{figure}** {again[figure]:.4f} "
            f"against ATC's {metrics[figure]:.4f}.",
            "",
        ]
    if not results["multi_label"]:
        rows = [
            [name, row["precision"], row["recall"], row["f1"], row["support"]]
            for name, row in metrics["per_class"].items()
        ]
        lines.append(markdown_table(["class", "precision", "recall", "F1", "support"], rows))
        if metrics["plots"]["confusion_matrix"]:
            lines += ["", f"![confusion matrix]({metrics['plots']['confusion_matrix']})"]
    return "\n".join(lines)


def run_classification(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ClassifyOptions | None = None,
) -> dict:
    """Classify every selected clip, write results.json, summary.md, predictions and the plot; return the results."""
    options = options or ClassifyOptions()
    selection = select_records(manifest, options.folds, options.limit)
    labels = options.labels or sorted({label for record in selection.records for label in record.labels})
    if not labels:
        raise DataError(f"{manifest}: no record has a label; classification needs labelled clips")
    records, targets, skipped = _targets(selection.records, labels)
    if not records:
        raise DataError(f"{manifest}: no selected clip has a label among the {len(labels)} classes")
    model = load_model(model_dir, resolve_device(options.device))
    scores, reranking, indices, unreadable = _scores(model, records, labels, options)
    targets = [targets[index] for index in indices]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Decided by the data, not by what survives a --labels list, so a tagging set is always scored as one.
    multi_label = any(len(set(record.labels)) > 1 for record in records)
    metrics = (
        _multi_label_metrics(targets, scores, labels)
        if multi_label
        else _single_label_metrics(targets, scores, labels, out)
    )
    reranked = None
    if reranking is not None:
        weight, source = rerank_weight(model, options.atm_weight)
        reranked_scores = rerank_rows(scores, reranking.top, reranking.log_odds, weight)
        reranked = {
            "k": options.rerank,
            "weight": weight,
            "weight_source": source,
            "score": "ATC similarity + weight x mean ATM log-odds over the prompt templates",
            "metrics": _multi_label_metrics(targets, reranked_scores, labels)
            if multi_label
            else _single_label_metrics(targets, reranked_scores, labels, out, RERANKED_CONFUSION_PNG),
        }
    predictions = []
    for row, index in enumerate(indices):
        best = np.argsort(-scores[row], kind="stable")[:TOP_PREDICTIONS]
        predictions.append(
            {
                "id": records[index].id,
                "labels": [labels[target] for target in targets[row]],
                "prediction": labels[int(best[0])],
                "top": [[labels[int(column)], float(scores[row, column])] for column in best],
                **(
                    {"reranked_prediction": labels[int(np.argmax(reranked_scores[row]))]}
                    if reranked is not None
                    else {}
                ),
            }
        )
    write_jsonl(out / PREDICTIONS_NAME, predictions)
    resolved = asdict(options) | {"labels": labels, "label_texts": [label_text(label) for label in labels]}
    results = {
        "task": "classification",
        "method": options.method,
        "multi_label": multi_label,
        **run_identity(
            manifest, model_dir, model, selection, len(indices), resolved, [*skipped, *unreadable]
        ),
        "metrics": metrics,
        "reranked": reranked,
        "predictions": PREDICTIONS_NAME,
    }
    write_report(out, results, _summary(results))
    return results
