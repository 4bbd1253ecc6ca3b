"""Whisper tiny.en (real weights, `weights:whisper-tiny.en`) on 5 s clips: padded to a 5 s window
(`window_seconds=5`) vs Whisper's own 30 s, in time and in what the features are worth.

Time: the encoder on a batch of 8 five-second ESC-10 clips, the two settings interleaved. Worth: ESC-10
(../shared/data/esc10) folds 1-4 train, fold 5 tests, logistic regression on each clip's frozen features
pooled over its frames (mean and max, concatenated), the same 5 s of each clip for both settings.
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO, Comparison

ESC10 = REPO.parent / "shared" / "data" / "esc10"
WINDOW = 5.0
BATCH = 8
REPEATS = 5  # timed passes of each, after one untimed
TEST_FOLD = "5"


def _clips() -> tuple[list[np.ndarray], list[str], list[str]]:
    from mint.audio.frontend import AudioFrontend, FrontendConfig

    meta = ESC10 / "meta.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: the ESC-10 data this benchmark reads is not there")
    rows = list(csv.DictReader(meta.open()))
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=WINDOW))
    clips = [frontend.load(ESC10 / "audio" / row["filename"]) for row in rows]
    return clips, [row["category"] for row in rows], [row["fold"] for row in rows]


def _batch(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(clip) for clip in clips])
    waveforms = torch.zeros(len(clips), int(lengths.max()))
    for row, clip in enumerate(clips):
        waveforms[row, : len(clip)] = torch.from_numpy(clip)
    return waveforms, lengths


def _pooled(encoder, clips: list[np.ndarray]) -> np.ndarray:
    """[clips, 2 * hidden]: each clip's features averaged and maxed over its real frames."""
    rows = []
    for start in range(0, len(clips), BATCH):
        output = encoder(*_batch(clips[start : start + BATCH]))
        mask = output.mask.unsqueeze(-1)
        mean = (output.features * mask).sum(1) / mask.sum(1)
        peak = output.features.masked_fill(~mask, float("-inf")).amax(1)
        rows.append(torch.cat([mean, peak], dim=1).numpy())
    return np.concatenate(rows)


def _accuracy(features: np.ndarray, labels: list[str], folds: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = np.array([fold == TEST_FOLD for fold in folds])
    y = np.array(labels)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(features[~test], y[~test])
    return float((probe.predict(features[test]) == y[test]).mean())


def run(work: Path) -> list[Comparison]:
    from mint.encoders import EncoderConfig, build_encoder

    clips, labels, folds = _clips()
    encoders = {
        name: build_encoder(
            EncoderConfig(kind="whisper", name_or_path="weights:whisper-tiny.en", window_seconds=window)
        )
        for name, window in (("30 s", None), ("window", WINDOW))
    }
    batch = _batch(clips[:: len(clips) // BATCH][:BATCH])
    # Interleaved, so that a change in the machine's load hits both the same way.
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(REPEATS + 1):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder(*batch)
            times[name].append(time.perf_counter() - started)
    timings = {name: statistics.median(values[1:]) for name, values in times.items()}

    accuracy, seconds = {}, {}
    for name, encoder in encoders.items():
        started = time.perf_counter()
        features = _pooled(encoder, clips)
        seconds[name] = time.perf_counter() - started
        accuracy[name] = _accuracy(features, labels, folds)
    tested = sum(fold == TEST_FOLD for fold in folds)
    return [
        Comparison(
            item=f"Whisper tiny.en encoder, {BATCH} x {WINDOW:g} s clips",
            baseline="padded to 30 s",
            ours=f"window_seconds={WINDOW:g}",
            baseline_s=timings["30 s"],
            ours_s=timings["window"],
            note=(
                f"ESC-10 fold {TEST_FOLD} accuracy ({tested} clips; logistic regression on mean+max pooled "
                f"features, folds 1-4 train): {accuracy['window']:.3f} with the {WINDOW:g} s window vs "
                f"{accuracy['30 s']:.3f} padded to 30 s; features of all {len(clips)} clips took "
                f"{seconds['window']:.0f} s vs {seconds['30 s']:.0f} s"
            ),
        )
    ]
