"""Classification metrics: accuracy, macro-F1, per-class table, confusion matrix, multi-label mAP.

Single-label inputs are integer class indices in [0, num_classes). Precision, recall and F1 of a
class are 0 where undefined (no predictions, no targets). Macro-F1 averages F1 over the classes
that occur in the targets or the predictions, as scikit-learn's `f1_score(average="macro")` does.
Multi-label mAP is the mean over classes of average precision, AP = sum over thresholds of
(R_k - R_(k-1)) P_k with tied scores forming one threshold; classes without a positive example
have no AP and are excluded from the mean and listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mint.errors import DataError


def _labels(values: np.ndarray | Sequence[int], name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(
            f"classification: {name} must be a 1-D array of integer class indices, got {array.dtype}"
        )
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise DataError(
            f"classification: {name} must lie in [0, {num_classes}), got [{array.min()}, {array.max()}]"
        )
    return array.astype(np.int64)


def confusion_matrix(
    targets: np.ndarray | Sequence[int], predictions: np.ndarray | Sequence[int], num_classes: int
) -> np.ndarray:
    """Counts [num_classes, num_classes]: row = true class, column = predicted class."""
    targets = _labels(targets, "targets", num_classes)
    predictions = _labels(predictions, "predictions", num_classes)
    if targets.shape != predictions.shape:
        raise DataError(f"classification: {len(targets)} targets but {len(predictions)} predictions")
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def classification_metrics(
    targets: np.ndarray | Sequence[int], predictions: np.ndarray | Sequence[int], class_names: Sequence[str]
) -> dict:
    """{"accuracy", "macro_f1", "per_class": {name: {precision, recall, f1, support}}, "confusion_matrix"}."""
    counts = confusion_matrix(targets, predictions, len(class_names))
    if counts.sum() == 0:
        raise DataError("classification: expected at least one example, got none")
    correct = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    precision = _safe_divide(correct, predicted.astype(np.float64))
    recall = _safe_divide(correct, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = (support + predicted) > 0
    return {
        "accuracy": float(correct.sum() / counts.sum()),
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(support[index]),
            }
            for index, name in enumerate(class_names)
        },
        "confusion_matrix": counts.tolist(),
    }


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """AP of one class from binary `targets` [N] and `scores` [N]; needs at least one positive."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = targets[order].astype(np.float64)
    true_positives = np.cumsum(hits)
    # Only the last position of each run of equal scores is a threshold.
    threshold_end = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    true_positives = true_positives[threshold_end]
    precision = true_positives / (threshold_end + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> dict:
    """Multi-label mAP from binary `targets` [N, C] and `scores` [N, C].

    Returns {"mAP": float | None, "per_class": [AP or None per class], "excluded_classes": [indices
    of classes without a positive example]}; "mAP" is None when no class has a positive.
    """
    targets = np.asarray(targets)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.ndim != 2 or targets.shape != scores.shape:
        raise DataError(
            f"mAP: targets and scores must both be [N, C] arrays, got {targets.shape} and {scores.shape}"
        )
    if not np.all((targets == 0) | (targets == 1)):
        raise DataError("mAP: targets must be binary (0/1 or bool)")
    if not np.all(np.isfinite(scores)):
        raise DataError("mAP: scores must be finite")
    positives = targets.sum(axis=0)
    per_class = [
        average_precision(targets[:, index], scores[:, index]) if positives[index] > 0 else None
        for index in range(targets.shape[1])
    ]
    kept = [value for value in per_class if value is not None]
    return {
        "mAP": float(np.mean(kept)) if kept else None,
        "per_class": per_class,
        "excluded_classes": [index for index, value in enumerate(per_class) if value is None],
    }
