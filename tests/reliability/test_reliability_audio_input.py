"""Valid but unusual audio works end to end: the front end, `mint data prepare`, `mint cache-features`
and a tiny `mint pretrain` over a manifest of such files; an hour-long file is cropped in bounded memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from reliability_support import encode, mint_env, run_mint, tone, write_ramp
from safetensors.numpy import load_file

from mint.audio import AudioFrontend, FrontendConfig, audio_info
from mint.cli.main import main
from mint_testing import tiny_model_overrides, tiny_pretrain_overrides

RATE = 16000
MAX_SECONDS = 1.5  # the clip length of tiny_model_overrides
HOUR = 3600


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * rate / len(signal)


@pytest.fixture(scope="module")
def unusual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A class-folder dataset of valid but unusual files, named `<class>/<name>`."""
    root = tmp_path_factory.mktemp("unusual")
    for folder in ("quiet", "wide", "narrow", "fine", "disguised", "long"):
        (root / folder).mkdir()
    files = {
        "silence": root / "quiet" / "silence.wav",
        "eight_channels": root / "wide" / "eight_channels.wav",
        "eight_khz": root / "narrow" / "eight_khz.wav",
        "hi_res_192k": root / "fine" / "hi_res_192k.flac",
        "mp3_named_wav": root / "disguised" / "mp3_named_wav.wav",
        "one_hour": root / "long" / "one_hour.wav",
        "one_hour_flac": root / "long" / "one_hour_flac.flac",
    }
    sf.write(files["silence"], np.zeros((RATE, 2), np.float32), RATE)
    sf.write(files["eight_channels"], tone(1.0, 48000, channels=8), 48000)
    sf.write(files["eight_khz"], tone(1.0, 8000), 8000)
    sf.write(files["hi_res_192k"], tone(0.5, 192000, channels=2), 192000, subtype="PCM_24")
    files["mp3_named_wav"].write_bytes(encode(tone(1.0, RATE), RATE, "MP3"))
    write_ramp(files["one_hour"], HOUR, RATE)
    write_ramp(files["one_hour_flac"], HOUR, RATE, fmt="FLAC")
    return files


def test_unusual_files_go_through_the_front_end(unusual: dict[str, Path]) -> None:
    assert audio_info(unusual["mp3_named_wav"]).format == "MP3"
    assert audio_info(unusual["eight_channels"]).channels == 8
    frontend = AudioFrontend(FrontendConfig(sample_rate=RATE, max_seconds=MAX_SECONDS))
    for name, path in unusual.items():
        for rng in (None, np.random.default_rng(3)):
            clip = frontend.load(path, rng=rng)
            expected = min(frontend.max_samples, round(audio_info(path).duration * RATE))
            assert clip.dtype == np.float32 and np.isfinite(clip).all(), name
            assert abs(len(clip) - expected) <= 1, (name, len(clip), expected)
            if name == "silence":
                assert not clip.any()
            elif not name.startswith("one_hour"):
                assert abs(peak_frequency(clip, RATE) - 440.0) <= RATE / len(clip), name


def test_one_hour_files_are_cropped_in_bounded_memory(unusual: dict[str, Path]) -> None:
    """Peak RSS and traced allocations of a fresh process barely move when it crops an hour of audio."""
    probe = textwrap.dedent(
        f"""
        import json, resource, sys, tracemalloc
        import numpy as np
        from mint.audio import AudioFrontend, FrontendConfig
        frontend = AudioFrontend(FrontendConfig(sample_rate={RATE}, max_seconds={MAX_SECONDS}))
        frontend.load(sys.argv[1])  # a short file first: warms every code path and allocator
        report = {{}}
        for path in sys.argv[2:]:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            clips = [frontend.load(path, rng=np.random.default_rng(seed)) for seed in range(3)]
            clips.append(frontend.load(path))
            traced_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            ints = [np.round(clip * 32768).astype(np.int64).tolist() for clip in clips]
            report[path] = {{"traced": traced_peak, "rss_kib": rss_growth_kib, "clips": ints}}
        print(json.dumps(report))
        """
    )
    paths = [str(unusual["one_hour"]), str(unusual["one_hour_flac"])]
    result = subprocess.run(
        [sys.executable, "-c", probe, str(unusual["eight_khz"]), *paths],
        env=mint_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    decoded_hour = HOUR * RATE * 4  # float32 bytes of the whole file: 230 MB
    for path in paths:
        entry = report[path]
        assert entry["traced"] < 4 * 1024 * 1024, (path, entry["traced"])
        assert entry["rss_kib"] * 1024 < decoded_hour / 20, (path, entry["rss_kib"])
        *random_crops, first = entry["clips"]
        # Frame n holds n mod 65536: a window is a run of consecutive values (wrapping at 2**15).
        assert first[:4] == [0, 1, 2, 3]
        for values in entry["clips"]:
            assert len(values) == round(MAX_SECONDS * RATE)
            assert set(np.diff(values).tolist()) <= {1, -65535}
        assert len({values[0] for values in random_crops}) == len(random_crops)


def test_unusual_files_through_prepare_cache_and_pretrain(unusual: dict[str, Path], tmp_path: Path) -> None:
    root = unusual["silence"].parents[1]
    manifest = tmp_path / "unusual.jsonl"
    prepared = run_mint("data", "prepare", "folder", str(root), "--out", str(manifest))
    assert prepared.returncode == 0, prepared.stderr
    assert f"wrote {len(unusual)} records" in prepared.stdout and "skipped" not in prepared.stdout
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    durations = {Path(record["audio"]).stem: record["duration"] for record in records}
    assert durations["one_hour"] == durations["one_hour_flac"] == HOUR
    assert durations["eight_khz"] == durations["eight_channels"] == 1.0
    assert durations["hi_res_192k"] == 0.5

    cache = tmp_path / "cache"
    cached = run_mint(
        "cache-features",
        "configs/pretrain/tiny.yaml",
        *tiny_model_overrides(),
        "data.source=manifest",
        f"data.manifest={manifest}",
        f"data.feature_cache={cache}",
    )
    assert cached.returncode == 0, cached.stdout + cached.stderr
    assert f"{len(unusual)} written, 0 already cached, 0 failed" in cached.stdout
    entries = sorted(cache.rglob("*.safetensors"))
    assert len(entries) == len(unusual)
    for entry in entries:
        features = load_file(str(entry))["features"]
        assert features.ndim == 2 and features.shape[0] > 0 and np.isfinite(features).all()

    # Stage 1 needs captions: the same clips, described by their folder names.
    for record in records:
        record["captions"] = [f"a {record['labels'][0]} sound"]
    manifest.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = tmp_path / "run"
    args = [*tiny_pretrain_overrides(out, steps=2), "data.source=manifest", f"data.manifest={manifest}"]
    assert main(["pretrain", "configs/pretrain/tiny.yaml", *args]) == 0
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2]
    assert all(np.isfinite(entry["loss"]) for entry in logged)
