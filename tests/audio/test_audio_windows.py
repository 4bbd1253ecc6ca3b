"""Long audio as windows: the plan against hand-worked cases and the covering rule, the windows read from a
file against the whole file resampled in one go, and memory bounded by a window on a 60-minute file."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from mint.audio import AudioFrontend, FrontendConfig
from mint.audio.windows import plan_windows, read_windows, window_sizes
from mint.errors import ConfigError


def _spans(total: int, window: int, hop: int) -> list[tuple[int, int]]:
    return [(w.start, w.start + w.length) for w in plan_windows(total, window, hop, 1)]


def test_the_plan_of_hand_worked_cases():
    assert _spans(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert _spans(11, 4, 3) == [(0, 4), (3, 7), (6, 10), (9, 11)]
    assert _spans(4, 4, 3) == [(0, 4)]  # one window: the plain path
    assert _spans(3, 4, 3) == [(0, 3)]
    assert _spans(8, 4, 4) == [(0, 4), (4, 8)]  # no overlap
    assert window_sizes(100, 0.2) == (100, 80) and window_sizes(100, 0.0) == (100, 100)
    with pytest.raises(ConfigError, match="0 < hop <= window"):
        plan_windows(10, 4, 5, 1)


@pytest.mark.parametrize(("total", "window", "hop"), [(1, 5, 2), (97, 10, 7), (100, 10, 10), (1000, 48, 40)])
def test_windows_cover_the_recording_and_an_event_no_longer_than_the_overlap_lies_in_one(total, window, hop):
    spans = _spans(total, window, hop)
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(end - start == window for start, end in spans[:-1])
    assert all(later[0] - earlier[0] == hop for earlier, later in itertools.pairwise(spans))
    assert len(spans) == 1 or spans[-2][1] < total  # no window lies inside the one before it
    overlap = window - hop
    for onset in range(total - overlap + 1):  # every event of `overlap` samples, straddling or not
        assert any(start <= onset and onset + overlap <= end for start, end in spans)


def test_the_windows_of_a_file_are_the_whole_file_resampled_in_one_go(tmp_path: Path):
    rate = 44100
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, (13 * rate, 2)).astype(np.float32)
    path = tmp_path / "scene.wav"
    sf.write(path, noise, rate)
    frontend = AudioFrontend(FrontendConfig(max_seconds=4.0))
    whole = soxr.resample(noise.astype(np.float64).mean(axis=1), rate, 16000, quality="HQ")
    window, hop = window_sizes(frontend.max_samples, 0.25)
    reader = frontend.reader(path)
    assert reader.total == len(whole) == 13 * 16000
    seen = []
    for planned, samples in read_windows(reader, window, hop):
        seen.append((planned.start_seconds, planned.end_seconds))
        # Each window decodes its span and the filter's context, so it matches the one-go resampling
        # to the filter's float32 rounding (as the front end's own crops do).
        np.testing.assert_allclose(samples, whole[planned.start : planned.start + planned.length], atol=1e-4)
    assert seen == [(0.0, 4.0), (3.0, 7.0), (6.0, 10.0), (9.0, 13.0)]
    in_memory = frontend.samples_reader(noise, rate)
    np.testing.assert_allclose(in_memory.read(6 * 16000, 4 * 16000), whole[6 * 16000 : 10 * 16000], atol=1e-4)


def test_reading_an_hour_holds_one_window(tmp_path: Path):
    rate, minutes = 16000, 60
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        for _ in range(minutes):
            handle.write((0.1 * rng.standard_normal(60 * rate)).astype(np.float32))
    frontend = AudioFrontend(FrontendConfig(max_seconds=10.0))
    window, hop = window_sizes(frontend.max_samples, 0.2)
    tracemalloc.start()
    windows = 0
    for planned, _samples in read_windows(frontend.reader(path), window, hop):
        windows += 1
        last = planned
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert windows == 450 and last.end_seconds == 3600.0
    hour = minutes * 60 * rate * 4  # float32 samples of the whole recording: 230 MB
    # A few windows' worth (decoded blocks, the window, its mono mix), never a share of the hour: 3.3 MB
    # measured, against 230 MB.
    assert peak < 8 * window * 4 < hour / 40
