"""Time in long recordings: the onset estimate on hand-worked similarity profiles, retrieval's right
recording / right window on hand-built window embeddings, and the runner end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import mint_testing
from mint.cli.main import main
from mint.data.manifest import ManifestRecord, TimedEvent, write_manifest
from mint.data.synth.events import render_event, sample_event
from mint.evaluation.temporal import _retrieval, estimate_onset
from mint.inference.long_audio import WindowEmbeddings

RATE = 16000


def _windows(count: int, hop: float, length: float, embeddings: np.ndarray | None = None) -> WindowEmbeddings:
    starts = np.arange(count) * hop
    if embeddings is None:
        embeddings = np.zeros((count, 1, 2), dtype=np.float32)
    return WindowEmbeddings(starts, starts + length, embeddings)


def test_the_onset_is_the_middle_of_the_plateau_minus_the_lead():
    # Windows of 3 s every 0.5 s: window i is centred at 0.5 i + 1.5. Eight of the fourteen values are 0.1,
    # so the median is 0.1; the best is 0.9 (window 6). Plateau 0.25: threshold 0.9 - 0.25 * 0.8 = 0.7, met
    # by windows 5-8 (0.75, 0.9, 0.71, 0.72) and not by 9 (0.69): centres 4.0 and 5.5 -> 4.75, minus the
    # lead 0.3 -> 4.45 s.
    windows = _windows(14, 0.5, 3.0)
    profile = np.array([0.1] * 4 + [0.3, 0.75, 0.9, 0.71, 0.72, 0.69] + [0.1] * 4)
    assert estimate_onset(windows, profile, plateau=0.25, lead=0.3) == pytest.approx(4.45)
    # Plateau 0.1: threshold 0.82 keeps the best window alone: centre 4.5 - 0.3.
    assert estimate_onset(windows, profile, plateau=0.1, lead=0.3) == pytest.approx(4.2)
    # No estimate before the recording starts.
    assert estimate_onset(windows, profile, plateau=0.1, lead=10.0) == 0.0


def test_a_wider_plateau_moves_the_estimate_to_its_middle():
    windows = _windows(8, 1.0, 2.0)  # centres 1, 2, ..., 8
    profile = np.array([0.0, 0.0, 0.8, 1.0, 0.95, 0.9, 0.0, 0.0])
    # plateau 0.25: threshold 1.0 - 0.25 * (1.0 - 0.4) = 0.85 (the median of the eight is 0.4): windows 3-5
    # (window 2's 0.8 falls short), centres 4 and 6 -> 5, minus 0.5.
    assert estimate_onset(windows, profile, plateau=0.25, lead=0.5) == pytest.approx(4.5)


class _Texts:
    """Stands in for a pipeline: each query text is a fixed unit vector."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return np.array([self.vectors[text] for text in texts], dtype=np.float32)


def test_retrieval_counts_the_right_recording_and_the_right_window():
    siren = TimedEvent("siren", 4.2, 5.2, "a loud siren")
    knock = TimedEvent("knock", 1.0, 1.4, "two soft knocks")
    bell = TimedEvent("bell", 7.0, 8.0, "a soft bell")
    records = [
        SimpleNamespace(id="a", events=[siren, knock]),
        SimpleNamespace(id="b", events=[bell, siren]),
    ]
    # Embedding axis 0 answers "a loud siren", axis 1 "two soft knocks", axis 2 "a soft bell". Windows of
    # 3 s every 2 s: 0-3, 2-5, 4-7, 6-9.
    a = np.zeros((4, 1, 3), dtype=np.float32)
    a[2, 0, 0] = 0.9  # the siren query's best window of record a: 4-7 s, which holds the siren
    a[3, 0, 2] = 0.8  # the bell query's best of all is record a, which has no bell
    b = np.zeros((4, 1, 3), dtype=np.float32)
    b[0, 0, 0] = 0.6
    b[3, 0, 2] = 0.5
    b[1, 0, 1] = 0.7  # the knock query's best of all is record b (no knock there)
    recordings = SimpleNamespace(records=records, plain=[_windows(4, 2.0, 3.0, a), _windows(4, 2.0, 3.0, b)])
    pipeline = _Texts({"a loud siren": [1, 0, 0], "two soft knocks": [0, 1, 0], "a soft bell": [0, 0, 1]})
    result = _retrieval(pipeline, recordings)
    assert result["queries"] == 3
    assert result["recording_at_1"] == pytest.approx(1 / 3)  # siren only
    assert result["window_at_1"] == pytest.approx(1 / 3)
    # The siren is in both records, the knock and the bell in one each: (1 + 0.5 + 0.5) / 3.
    assert result["recording_chance"] == pytest.approx(2 / 3)
    # Windows 0-3, 2-5, 4-7, 6-9 s: the siren (4.2-5.2) is half or more in 2-5 and 4-7 in both records
    # (2/4), the knock (1.0-1.4) in 0-3 (1/4), the bell (7.0-8.0) in 6-9 (1/4): (0.5 + 0.25 + 0.25) / 3.
    assert result["window_chance"] == pytest.approx(1 / 3)

    # The siren's best window moved to 0-3 s, which holds none of it: right recording, wrong window.
    a[2, 0, 0], a[0, 0, 0] = 0.0, 0.9
    result = _retrieval(pipeline, recordings)
    assert result["recording_at_1"] == pytest.approx(1 / 3) and result["window_at_1"] == 0.0


def _long_recording(
    path: Path, seconds: float, placed: list[tuple[str, float]], seed: int
) -> list[TimedEvent]:
    rng = np.random.default_rng(seed)
    audio = 0.003 * rng.standard_normal(int(seconds * RATE)).astype(np.float32)
    events = []
    for kind, onset in placed:
        event = sample_event(rng, kind)
        wave = render_event(event, RATE, rng)
        start = round(onset * RATE)
        audio[start : start + len(wave)] += wave
        events.append(TimedEvent(kind, onset, onset + event.seconds, f"a {event.loudness} {kind}"))
    sf.write(path, audio, RATE, subtype="FLOAT")
    return events


def test_mint_eval_temporal_reports_errors_that_match_its_estimates(tmp_path, capsys):
    model = mint_testing.save_tiny_model(tmp_path / "model", llm=False, seed=3)
    records = []
    for index, placed in enumerate([[("siren", 2.0), ("bell", 6.5), ("siren", 9.0)], [("knock", 4.0)]]):
        path = tmp_path / f"long{index}.wav"
        events = _long_recording(path, 12.0, placed, seed=index)
        records.append(ManifestRecord(id=f"long{index}", audio=str(path), duration=12.0, events=events))
    records.append(ManifestRecord(id="no-events", audio=str(tmp_path / "long0.wav")))
    write_manifest(records, tmp_path / "long.jsonl")

    out = tmp_path / "out"
    argv = ["eval", "temporal", str(tmp_path / "long.jsonl"), "--model", str(model), "--out", str(out)]
    assert main([*argv, "--overlap", "0.75", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "onsets mint" in printed and "right window @1" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["options"]["overlap"] == 0.75
    rows = [json.loads(line) for line in (out / "onsets.jsonl").read_text().splitlines()]
    # The two sirens of long0 are ambiguous; the bell and the knock are scored.
    assert [(row["id"], row["label"]) for row in rows] == [("long0", "bell"), ("long1", "knock")]
    assert results["onsets"]["events"] == 2 and results["onsets"]["ambiguous_events"] == 2
    for row in rows:
        assert row["error"] == pytest.approx(abs(row["estimate"] - row["onset"]), abs=1e-3)
        assert row["baseline_error"] == pytest.approx(abs(6.0 - row["onset"]), abs=1e-3)  # middle of 12 s
    errors = np.array([row["error"] for row in rows])
    assert results["onsets"]["model"]["median_seconds"] == pytest.approx(np.median(errors), abs=1e-3)
    # The middle of 12 s is 0.5 s from the bell (6.5 s) and 2 s from the knock (4 s).
    assert results["onsets"]["baseline_middle_of_recording"]["within_1s"] == 0.5
    assert results["skipped"]["count"] == 1 and results["skipped"]["by_reason"] == {"no events": 1}
    captions = {event.caption for record in records for event in record.events}
    assert results["retrieval"]["queries"] == len(captions)
    assert (out / "timeline.png").stat().st_size > 1000
    assert "Time in long recordings" in (out / "summary.md").read_text()
