"""The front end: mono mixdown, resampling, cropping and padding, checked against independent sums."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.signal import correlate, resample_poly

from mint.audio import AudioFrontend, FrontendConfig, crop, pad_batch, read_audio, resample, to_mono
from mint.errors import AudioError, ConfigError
from mint_testing import ESC10, require_shared

ESC10_AUDIO = ESC10 / "audio"


def sine(freq: float, rate: int, frames: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(frames) / rate)).astype(np.float32)


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * rate / len(signal)


def offset_in(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Where ``needle`` best matches inside ``haystack`` (cross-correlation peak)."""
    return int(np.argmax(correlate(haystack, needle, mode="valid", method="fft")))


def test_to_mono_is_the_channel_mean() -> None:
    samples = np.random.default_rng(0).uniform(-1, 1, (500, 3)).astype(np.float32)
    by_hand = [(float(a) + float(b) + float(c)) / 3 for a, b, c in samples]
    np.testing.assert_allclose(to_mono(samples), by_hand, atol=1e-7)
    assert to_mono(samples).dtype == np.float32
    np.testing.assert_array_equal(to_mono(samples, "first"), samples[:, 0])
    np.testing.assert_array_equal(to_mono(samples[:, 1]), samples[:, 1])
    with pytest.raises(AudioError, match="mode"):
        to_mono(samples, "loudest")


@pytest.mark.parametrize(
    ("orig_sr", "target_sr"), [(44100, 16000), (8000, 16000), (192000, 16000), (22050, 48000)]
)
def test_resample_keeps_frequency_and_length(orig_sr: int, target_sr: int) -> None:
    frames = orig_sr // 2 + 13
    tone = sine(1000.0, orig_sr, frames)
    out = resample(tone, orig_sr, target_sr)
    assert out.dtype == np.float32
    assert abs(len(out) - round(frames * target_sr / orig_sr)) <= 1
    assert abs(peak_frequency(out, target_sr) - 1000.0) <= target_sr / len(out)
    # scipy's polyphase resampler, an independent implementation, agrees away from the edges.
    gcd = np.gcd(orig_sr, target_sr)
    reference = resample_poly(tone.astype(np.float64), target_sr // gcd, orig_sr // gcd)
    edge = target_sr // 50
    np.testing.assert_allclose(out[edge:-edge], reference[edge : len(out) - edge], atol=2e-3)


def test_resample_channels_independently_and_identity() -> None:
    stereo = np.stack([sine(500.0, 32000, 8000), sine(3000.0, 32000, 8000)], axis=1)
    out = resample(stereo, 32000, 16000)
    assert out.shape == (4000, 2)
    assert abs(peak_frequency(out[:, 0], 16000) - 500.0) <= 4
    assert abs(peak_frequency(out[:, 1], 16000) - 3000.0) <= 4
    same = resample(stereo, 16000, 16000)
    np.testing.assert_array_equal(same, stereo)
    assert same is not stereo
    with pytest.raises(AudioError, match="orig_sr"):
        resample(stereo, 0, 16000)
    with pytest.raises(AudioError, match="quality"):
        resample(stereo, 32000, 16000, quality="best")


def test_crop_windows() -> None:
    ramp = np.arange(1000, dtype=np.float32)
    np.testing.assert_array_equal(crop(ramp, 300), ramp[:300])  # evaluation: the start of the clip
    np.testing.assert_array_equal(
        crop(ramp, 300, np.random.default_rng(7)), crop(ramp, 300, np.random.default_rng(7))
    )
    starts = set()
    for seed in range(200):
        window = crop(ramp, 300, np.random.default_rng(seed))
        start = int(window[0])
        np.testing.assert_array_equal(window, ramp[start : start + 300])
        starts.add(start)
    # Training windows spread over every possible start, 0 to 700.
    assert len(starts) > 100 and min(starts) < 30 and 670 < max(starts) <= 700
    short = ramp[:120]
    np.testing.assert_array_equal(crop(short, 300, np.random.default_rng(1)), short)  # never pads
    stereo = np.stack([ramp, -ramp], axis=1)
    np.testing.assert_array_equal(crop(stereo, 10), stereo[:10])
    with pytest.raises(AudioError, match="max_samples"):
        crop(ramp, 0)


def test_pad_batch() -> None:
    clips = [np.ones(3, np.float32), np.arange(5, dtype=np.float64), np.full(1, -2.0, np.float32)]
    batch, lengths = pad_batch(clips)
    assert batch.dtype == torch.float32 and lengths.dtype == torch.long
    assert lengths.tolist() == [3, 5, 1]
    expected = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 2, 3, 4], [-2, 0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(batch, expected)
    with pytest.raises(AudioError, match="at least one clip"):
        pad_batch([])
    with pytest.raises(AudioError, match=r"clips\[1\]"):
        pad_batch([np.ones(3), np.ones((3, 2))])


@pytest.mark.parametrize(
    ("field", "value"),
    [("sample_rate", 0), ("sample_rate", 16000.0), ("max_seconds", -1.0), ("max_seconds", float("inf")),
     ("max_seconds", 1e-6), ("mono", "sum"), ("resample_quality", "hq")],
)  # fmt: skip
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"FrontendConfig.{field}"):
        FrontendConfig(**{field: value})


def write(path: Path, samples: np.ndarray, rate: int, fmt: str = "WAV") -> Path:
    sf.write(path, samples, rate, format=fmt, subtype="FLOAT" if fmt == "WAV" else None)
    return path


def test_load_evaluation_crop_is_the_start_of_the_resampled_clip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (3 * 44100, 2)).astype(np.float32)
    path = write(tmp_path / "noise.wav", stereo, 44100)
    frontend = AudioFrontend(FrontendConfig(max_seconds=1.0))
    out = frontend.load(path)
    assert out.dtype == np.float32 and out.shape == (16000,)
    whole = soxr.resample(stereo.astype(np.float64).mean(axis=1), 44100, 16000, quality="HQ")
    np.testing.assert_allclose(out, whole[:16000], atol=1e-4)


@pytest.mark.parametrize(
    ("rate", "fmt", "quality"),
    [(44100, "WAV", "HQ"), (8000, "FLAC", "VHQ"), (48000, "OGG", "HQ"), (22050, "MP3", "VHQ")],
)
def test_load_training_crop_is_a_window_of_the_resampled_clip(
    tmp_path: Path, rate: int, fmt: str, quality: str
) -> None:
    noise = np.random.default_rng(4).uniform(-0.5, 0.5, 3 * rate).astype(np.float32)
    path = write(tmp_path / "clip.wav", noise, rate, fmt)  # the name lies for three of the four
    frontend = AudioFrontend(FrontendConfig(max_seconds=0.5, resample_quality=quality))
    decoded = read_audio(path)
    whole = soxr.resample(decoded.samples[:, 0], rate, 16000, quality=quality)
    offsets = set()
    for seed in range(4):
        out = frontend.load(path, np.random.default_rng(seed))
        assert out.shape == (8000,)
        np.testing.assert_array_equal(out, frontend.load(path, np.random.default_rng(seed)))
        # The crop is a window of the whole clip resampled in one go, lined up on its sample grid.
        offset = offset_in(whole, out)
        np.testing.assert_allclose(out, whole[offset : offset + 8000], atol=1e-5)
        offsets.add(offset)
        in_memory = frontend.process(decoded.samples, decoded.sample_rate, np.random.default_rng(seed))
        np.testing.assert_allclose(out, in_memory, atol=1e-6)
    assert len(offsets) > 1


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [("eight_channels", 48000, 8), ("narrowband", 8000, 1), ("hi_res", 192000, 2)],
)
def test_load_unusual_rates_and_channel_counts(tmp_path: Path, name: str, rate: int, channels: int) -> None:
    tones = np.stack([sine(200.0 * (c + 1), rate, rate // 2, 0.1) for c in range(channels)], axis=1)
    path = write(tmp_path / f"{name}.wav", tones, rate)
    out = AudioFrontend().load(path)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert abs(len(out) - 8000) <= 1
    reference = resample_poly(
        tones.astype(np.float64).mean(axis=1), 16000 // np.gcd(rate, 16000), rate // np.gcd(rate, 16000)
    )
    np.testing.assert_allclose(out[200:-200], reference[200 : len(out) - 200], atol=2e-3)


def test_all_silence_stays_silent(tmp_path: Path) -> None:
    path = write(tmp_path / "silence.flac", np.zeros((22050, 2), np.float32), 22050, "FLAC")
    out = AudioFrontend().load(path)
    assert len(out) == 16000 and np.all(out == 0)


def test_load_decodes_only_the_window(tmp_path: Path) -> None:
    rate = 16000
    noise = np.random.default_rng(5).uniform(-0.5, 0.5, 120 * rate).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, noise, rate, format="FLAC")
    frontend = AudioFrontend(FrontendConfig(max_seconds=2.0))
    tracemalloc.start()
    out = frontend.load(path, np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.shape == (2 * rate,)
    assert peak < noise.nbytes / 10  # the whole clip would be 7.7 MB as float32


def test_load_real_esc10_clip() -> None:
    path = sorted(require_shared(ESC10_AUDIO).glob("*.ogg"))[0]
    decoded = read_audio(path)
    out = AudioFrontend().load(path)
    assert len(out) == round(len(decoded.samples) * 16000 / 44100)
    np.testing.assert_allclose(out, soxr.resample(decoded.samples[:, 0], 44100, 16000), atol=1e-6)


def test_process_validates_arrays() -> None:
    frontend = AudioFrontend()
    good = np.zeros(1000, np.float32)
    cases = [
        (np.array([0.0, np.nan] * 10), "NaN or infinite"),
        (np.array([0.0, np.inf] * 10), "NaN or infinite"),
        (np.array([1e300] * 10), "NaN or infinite"),
        (np.zeros(0), "no samples"),
        (np.zeros((10, 0)), "no samples"),
        (np.zeros((4, 4, 4)), "shape"),
        (np.zeros(10, dtype=complex), "dtype"),
        (np.array(["a", "b"]), "dtype"),
        (np.zeros((2, 1000)), "more channels than frames"),
    ]
    for samples, problem in cases:
        with pytest.raises(AudioError, match=f"samples: .*{problem}"):
            frontend.process(samples, 16000)
    for rate in (0, -16000, 16000.5, "16000"):
        with pytest.raises(AudioError, match="sample_rate"):
            frontend.process(good, rate)
    with pytest.raises(AudioError, match="shorter than one sample"):
        frontend.process(np.ones(5, np.float32), 192000)


def test_process_scales_integer_pcm() -> None:
    pcm = (sine(440.0, 16000, 1600) * 32767).astype(np.int16)
    out = AudioFrontend().process(pcm, 16000)
    np.testing.assert_allclose(out, pcm / 32768.0, atol=1e-7)


def test_load_from_bytes_and_stream_matches_path(tmp_path: Path) -> None:
    path = write(
        tmp_path / "clip.ogg",
        np.random.default_rng(6).uniform(-0.5, 0.5, 30000).astype(np.float32),
        24000,
        "FLAC",
    )
    frontend = AudioFrontend()
    expected = frontend.load(path)
    np.testing.assert_array_equal(frontend.load(path.read_bytes()), expected)
    np.testing.assert_array_equal(frontend.load(io.BytesIO(path.read_bytes())), expected)

    class Pipe(io.RawIOBase):
        name = "pipe:0"

        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:
            return self._inner.readinto(buffer)

    np.testing.assert_array_equal(frontend.load(Pipe(path.read_bytes())), expected)
    with pytest.raises(AudioError, match="pipe:0: not a recognised audio file"):
        frontend.load(Pipe(b"plain text, no audio"))


RATES = st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]) | st.integers(50, 250_000)


@settings(max_examples=60, deadline=None)
@given(
    samples=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 400), st.integers(1, 3)).filter(lambda shape: shape[0] >= shape[1]),
        elements=st.floats(-4, 4, width=32),
    ),
    rate=RATES,
    max_seconds=st.floats(0.001, 0.05),
    seed=st.none() | st.integers(0, 2**32 - 1),
)
def test_process_output_is_finite_float32_and_bounded(
    samples: np.ndarray, rate: int, max_seconds: float, seed: int | None
) -> None:
    frontend = AudioFrontend(FrontendConfig(max_seconds=max_seconds))
    rng = None if seed is None else np.random.default_rng(seed)
    expected_length = min(frontend.max_samples, int(len(samples) * 16000 / rate + 0.5))
    try:
        out = frontend.process(samples, rate, rng)
    except AudioError as error:
        assert "shorter than one sample" in str(error)
        assert len(samples) * 16000 / rate < 0.5 + 1e-9
        return
    assert out.dtype == np.float32 and out.ndim == 1
    assert np.isfinite(out).all()
    assert len(out) <= frontend.max_samples
    assert abs(len(out) - expected_length) <= 1
