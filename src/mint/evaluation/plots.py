"""Figures of the evaluation runners: a confusion matrix and recall@k curves, as PNGs.

matplotlib is an optional dependency (the `eval` extra); without it the functions return None and the
runners record that the plot was not drawn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_confusion_matrix(
    counts: np.ndarray, class_names: Sequence[str], path: str | os.PathLike
) -> Path | None:
    """Row-normalised confusion matrix (row = true class), with the raw counts written in small sets."""
    plt = _pyplot()
    if plt is None:
        return None
    counts = np.asarray(counts)
    classes = len(class_names)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = min(4.0 + 0.35 * classes, 40.0)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="fraction of the true class")
    axis.set_xticks(range(classes), class_names, rotation=90, fontsize=7)
    axis.set_yticks(range(classes), class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if classes <= 30:
        for row in range(classes):
            for column in range(classes):
                if counts[row, column]:
                    colour = "white" if fractions[row, column] > 0.5 else "black"
                    axis.text(
                        column,
                        row,
                        int(counts[row, column]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=colour,
                    )
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_recall_curves(
    curves: Mapping[str, Mapping[str, np.ndarray]], path: str | os.PathLike
) -> Path | None:
    """One panel per direction; in each, recall@k (k = 1, 2, ...) of every method: curves[direction][method]."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for axis, (direction, methods) in zip(axes[0], curves.items(), strict=True):
        for method, recall in methods.items():
            ks = np.arange(1, len(recall) + 1)
            axis.plot(ks, recall, label=method, linewidth=1.4)
        axis.set_title(direction.replace("_", " "))
        axis.set_xlabel("k")
        axis.set_ylabel("recall@k")
        axis.set_xscale("log")
        axis.set_ylim(0.0, 1.02)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_timeline(
    times: np.ndarray,
    curves: Mapping[str, np.ndarray],
    events: Sequence[tuple[str, float, float]],
    path: str | os.PathLike,
    title: str = "",
) -> Path | None:
    """Similarity over time, one curve per label, and each true event (label, onset, offset) as a band in
    its label's colour: where the model hears each sound against where it is."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(11.0, 3.6))
    colours = {}
    for label, values in curves.items():
        (line,) = axis.plot(times, values, label=label, linewidth=1.1)
        colours[label] = line.get_color()
    for label, onset, offset in events:
        axis.axvspan(onset, offset, color=colours.get(label, "grey"), alpha=0.25, linewidth=0)
    axis.set_xlabel("seconds (window centre; shaded: the true events)")
    axis.set_ylabel("ATC similarity")
    axis.set_xlim(float(times[0]), float(times[-1]))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
