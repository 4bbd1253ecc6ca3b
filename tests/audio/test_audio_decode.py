"""Decoding: content-based format detection, segment reads, real ESC-10 files, and every refusal."""

from __future__ import annotations

import io
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mint.audio import audio_info, read_audio
from mint.errors import AudioError, UnsupportedAudioFormatError
from mint_testing import ESC10, missing, require_shared

ESC10_AUDIO = ESC10 / "audio"

RATE = 22050
FRAMES = 3 * RATE
TONE_HZ = 440.0
# Each format is written under an extension that names a different format.
MISLEADING_NAMES = {
    "WAV": "clip.mp3",
    "RF64": "clip.flac",
    "FLAC": "clip.wav",
    "OGG": "clip.mp3",
    "MP3": "clip.wav",
}


def stereo_tone() -> np.ndarray:
    t = np.arange(FRAMES) / RATE
    left = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return np.stack([left, 0.25 * left], axis=1).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, **kwargs)
    return buffer.getvalue()


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.argmax(spectrum)) * rate / len(signal)


def id3v24_tag(body_size: int) -> bytes:
    """An ID3v2.4 header (size as a 4x7-bit "synchsafe" integer) followed by zero padding."""
    size = bytes((body_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + size + bytes(body_size)


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes]:
    tone = stereo_tone()
    return {fmt: encode(tone, RATE, fmt) for fmt in MISLEADING_NAMES}


@pytest.mark.parametrize("fmt", list(MISLEADING_NAMES))
def test_format_is_detected_from_content_not_extension(fmt: str, encoded: dict, tmp_path: Path) -> None:
    path = tmp_path / MISLEADING_NAMES[fmt]
    path.write_bytes(encoded[fmt])
    for source in (path, str(path), encoded[fmt], io.BytesIO(encoded[fmt])):
        info = audio_info(source)
        assert (info.format, info.sample_rate, info.channels, info.frames) == (fmt, RATE, 2, FRAMES)
    with path.open("rb") as handle:
        assert read_audio(handle).samples.shape == (FRAMES, 2)


@pytest.mark.parametrize("fmt", ["WAV", "RF64", "FLAC"])
def test_lossless_formats_return_the_written_samples(fmt: str, encoded: dict) -> None:
    decoded = read_audio(encoded[fmt])
    assert decoded.sample_rate == RATE
    assert decoded.samples.dtype == np.float32
    # Written as 16-bit PCM: decoded values are within one quantisation step.
    np.testing.assert_allclose(decoded.samples, stereo_tone(), atol=1.0 / 32768)


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_lossy_formats_keep_the_tone(fmt: str, encoded: dict) -> None:
    samples = read_audio(encoded[fmt]).samples
    assert samples.shape == (FRAMES, 2)
    assert abs(peak_frequency(samples[:, 0], RATE) - TONE_HZ) <= RATE / FRAMES
    # The right channel was written at a quarter of the amplitude of the left.
    assert np.std(samples[:, 1]) / np.std(samples[:, 0]) == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize("fmt", list(MISLEADING_NAMES))
def test_segment_read_equals_slice_of_full_read(fmt: str, encoded: dict) -> None:
    full = read_audio(encoded[fmt]).samples
    for start, count in [(0, 1000), (12345, 3000), (40000, 20000), (FRAMES - 10, 500)]:
        segment = read_audio(encoded[fmt], start_frame=start, num_frames=count).samples
        np.testing.assert_array_equal(segment, full[start : start + count])
    np.testing.assert_array_equal(read_audio(encoded[fmt], start_frame=50000).samples, full[50000:])


def test_non_seekable_stream_decodes(encoded: dict) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:
            return self._inner.readinto(buffer)

    expected = read_audio(encoded["FLAC"]).samples
    np.testing.assert_array_equal(read_audio(Pipe(encoded["FLAC"])).samples, expected)


@pytest.mark.parametrize(("fmt", "body_size"), [("MP3", 300), ("FLAC", 70)])
def test_id3_tag_is_skipped_to_find_the_container(fmt: str, body_size: int, encoded: dict) -> None:
    tagged = id3v24_tag(body_size) + encoded[fmt]
    info = audio_info(tagged)
    assert (info.format, info.frames) == (fmt, FRAMES)
    np.testing.assert_array_equal(read_audio(tagged).samples, read_audio(encoded[fmt]).samples)


def test_segment_reads_hold_only_the_segment_in_memory(tmp_path: Path) -> None:
    rate = 16000
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 60 * rate).astype(np.float32)
    whole_bytes = noise.nbytes  # 3.84 MB as float32
    for fmt in ("FLAC", "MP3"):
        path = tmp_path / f"long.{fmt.lower()}"
        sf.write(path, noise, rate, format=fmt)
        tracemalloc.start()
        segment = read_audio(path, start_frame=50 * rate, num_frames=rate).samples
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert segment.shape == (rate, 1)
        assert peak < whole_bytes / 4, f"{fmt}: peak {peak} bytes while reading a 1 s segment"


def esc10_files() -> list[Path]:
    files = sorted(require_shared(ESC10_AUDIO).glob("*.ogg"))
    if not files:
        missing(f"the .ogg files of {ESC10_AUDIO}")
    return files


def test_real_esc10_ogg_files_decode_at_44_1_khz() -> None:
    files = esc10_files()
    for path in files[:: max(1, len(files) // 6)]:
        info = audio_info(path)
        assert (info.format, info.sample_rate, info.channels) == ("OGG", 44100, 1)
        assert 4.9 < info.duration < 5.1  # ESC-50 clips are five seconds long
        decoded = read_audio(path)
        assert decoded.samples.shape == (info.frames, 1)
        assert np.isfinite(decoded.samples).all() and np.abs(decoded.samples).max() <= 1.0
    full = read_audio(files[0]).samples
    np.testing.assert_array_equal(read_audio(files[0], 100_000, 44_100).samples, full[100_000:144_100])


def raises_naming(name: str, problem: str) -> pytest.RaisesContext:
    return pytest.raises(AudioError, match=re.escape(name) + ".*" + problem)


def test_missing_directory_and_empty_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with raises_naming(str(missing), "not found"):
        audio_info(missing)
    with raises_naming(str(tmp_path), "directory"):
        read_audio(tmp_path)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with raises_naming(str(empty), "empty file"):
        read_audio(empty)
    with raises_naming("<bytes>", "empty file"):
        audio_info(b"")


def test_text_is_refused_as_not_audio(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is a caption, not a sound\n")
    with raises_naming(str(text), "not a recognised audio file") as refused:
        read_audio(text)
    assert refused.type is UnsupportedAudioFormatError  # what the server answers with 415
    with text.open("r") as handle, raises_naming(str(text), "text mode"):
        read_audio(handle)
    with pytest.raises(AudioError, match="expected a path, bytes or a binary file object"):
        read_audio(12345)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_truncated_files_are_refused(fmt: str, encoded: dict, tmp_path: Path) -> None:
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(encoded[fmt][: len(encoded[fmt]) // 2])
    with raises_naming(str(path), "(corrupt|truncated|no audio samples)"):
        read_audio(path)


def test_corrupt_flac_is_refused(encoded: dict, tmp_path: Path) -> None:
    damaged = bytearray(encoded["FLAC"])
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(range(64))
    path = tmp_path / "damaged.flac"
    path.write_bytes(bytes(damaged))
    with raises_naming(str(path), "corrupt"):
        read_audio(path)


def test_zero_samples_and_non_finite_samples_are_refused(tmp_path: Path) -> None:
    silent = tmp_path / "nothing.wav"
    sf.write(silent, np.zeros((0, 1), dtype=np.float32), 16000)
    with raises_naming(str(silent), "no audio samples"):
        audio_info(silent)
    for bad in (np.nan, np.inf, -np.inf):
        samples = np.zeros(100, dtype=np.float32)
        samples[37] = bad
        path = tmp_path / f"bad_{bad}.wav"
        sf.write(path, samples, 16000, subtype="FLOAT")
        with raises_naming(str(path), r"NaN or infinite samples \(first at frame 37\)"):
            read_audio(path)
        # A segment that avoids the bad sample is fine.
        assert read_audio(path, start_frame=40).samples.shape == (60, 1)


def test_bad_segment_arguments_are_refused(encoded: dict) -> None:
    with raises_naming("<bytes>", f"start_frame {FRAMES} is past the end"):
        read_audio(encoded["WAV"], start_frame=FRAMES)
    with pytest.raises(AudioError, match="start_frame"):
        read_audio(encoded["WAV"], start_frame=-1)
    with pytest.raises(AudioError, match="num_frames"):
        read_audio(encoded["WAV"], num_frames=0)


MAGIC_PREFIXES = [
    b"",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"RF64\xff\xff\xff\xffWAVEds64",
    b"fLaC",
    b"OggS\x00\x02",
    b"ID3\x03\x00\x00\x00\x00\x02\x00",
    b"\xff\xfb\x90\x64",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(MAGIC_PREFIXES), tail=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_audio_error(prefix: bytes, tail: bytes) -> None:
    try:
        decoded = read_audio(prefix + tail)
    except AudioError as error:
        assert str(error).startswith("<bytes>:")
    else:
        assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 2
        assert np.isfinite(decoded.samples).all()
