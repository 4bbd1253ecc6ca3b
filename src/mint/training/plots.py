"""Loss curves from metrics.jsonl, as a PNG a person can glance at."""

from __future__ import annotations

import json
import os
from pathlib import Path


def plot_training_curves(metrics_path: str | os.PathLike, out_path: str | os.PathLike) -> Path | None:
    """One panel per logged loss (`loss*` keys) against the step; None when matplotlib or data is missing."""
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        return None
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    names = sorted({key for record in records for key in record if key.startswith("loss")})
    if not records or not names:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        points = [(record["step"], record[name]) for record in records if name in record]
        axis.plot([step for step, _ in points], [value for _, value in points], linewidth=1.2)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out_path = Path(out_path)
    figure.savefig(out_path, dpi=110)
    plt.close(figure)
    return out_path
