"""Classification metrics against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest

from mint.errors import DataError
from mint.evaluation.metrics import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    mean_average_precision,
)
from mint_testing import require_module

sklearn_metrics = require_module("sklearn.metrics", "pip install scikit-learn")

CLASSES = [f"class{index}" for index in range(7)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_single_label_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Class 6 never occurs and class 5 is only ever predicted, to exercise the undefined cases.
    targets = rng.integers(0, 5, size=200)
    predictions = np.where(rng.random(200) < 0.6, targets, rng.integers(0, 6, size=200))
    labels = list(range(len(CLASSES)))

    ours = classification_metrics(targets, predictions, CLASSES)

    assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(targets, predictions))
    assert ours["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(targets, predictions, average="macro"))
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        targets, predictions, labels=labels, zero_division=0
    )
    for index, name in enumerate(CLASSES):
        row = ours["per_class"][name]
        assert row["precision"] == pytest.approx(precision[index])
        assert row["recall"] == pytest.approx(recall[index])
        assert row["f1"] == pytest.approx(f1[index])
        assert row["support"] == support[index]
    expected_confusion = sklearn_metrics.confusion_matrix(targets, predictions, labels=labels)
    np.testing.assert_array_equal(ours["confusion_matrix"], expected_confusion)
    np.testing.assert_array_equal(confusion_matrix(targets, predictions, len(CLASSES)), expected_confusion)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_map_matches_sklearn_with_ties_and_an_empty_class(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = (rng.random((80, 6)) < 0.3).astype(int)
    targets[:, 2] = 0
    # Scores from few distinct values, so tied scores must be handled as one threshold.
    scores = rng.integers(0, 5, size=(80, 6)).astype(float)

    ours = mean_average_precision(targets, scores)

    kept = [index for index in range(6) if index != 2]
    expected = [
        sklearn_metrics.average_precision_score(targets[:, index], scores[:, index]) for index in kept
    ]
    assert ours["excluded_classes"] == [2]
    assert ours["per_class"][2] is None
    np.testing.assert_allclose([ours["per_class"][index] for index in kept], expected, rtol=1e-12)
    assert ours["mAP"] == pytest.approx(np.mean(expected))


def test_average_precision_hand_worked() -> None:
    # Ranked: 0.9 (pos), 0.8 (neg), 0.7 (pos) -> AP = (1/2) * 1 + (1/2) * (2/3).
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(0.5 + 1 / 3)


def test_bad_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="must lie in \\[0, 3\\)"):
        classification_metrics([0, 3], [0, 1], ["a", "b", "c"])
    with pytest.raises(DataError, match="2 targets but 3 predictions"):
        classification_metrics([0, 1], [0, 1, 2], ["a", "b", "c"])
    with pytest.raises(DataError, match="integer class indices"):
        classification_metrics([0.5], [0], ["a"])
    with pytest.raises(DataError, match="at least one example"):
        classification_metrics([], [], ["a"])
    with pytest.raises(DataError, match="binary"):
        mean_average_precision(np.array([[2, 0]]), np.zeros((1, 2)))
    with pytest.raises(DataError, match="\\[N, C\\]"):
        mean_average_precision(np.zeros((2, 2)), np.zeros((2, 3)))
