"""From a file or an array to what encoders take: float32 mono at one sample rate, bounded length.

The pure steps (``to_mono``, ``resample``, ``crop``, ``pad_batch``) are usable on their own.
``AudioFrontend.load`` chooses the crop window before decoding, so a long file is never read whole:
only the window plus a little context for the resampling filter is decoded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import soxr
import torch

from mint.audio.decode import AudioSource, audio_info, describe_source, read_audio
from mint.errors import AudioError, ConfigError

RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
MONO_MODES = ("mean", "first")

# Source audio decoded on each side of a crop window, so that the resampling filter sees the real
# neighbouring signal instead of the silence it assumes past an edge. The filter spans a fixed number
# of samples at the lower of the two rates; soxr's VHQ needs under 200 at ratios from 1:320 to 16:1.
_CONTEXT_SAMPLES = 400


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class FrontendConfig:
    """How audio is prepared for the encoder.

    ``mono``: ``"mean"`` averages the channels, ``"first"`` keeps channel 0.
    ``resample_quality``: a soxr quality, one of ``RESAMPLE_QUALITIES``.
    """

    sample_rate: int = 16000
    max_seconds: float = 10.0
    mono: str = "mean"
    resample_quality: str = "HQ"

    def __post_init__(self) -> None:
        if not _is_int(self.sample_rate) or self.sample_rate <= 0:
            raise ConfigError(
                f"FrontendConfig.sample_rate: expected a positive integer, got {self.sample_rate!r}"
            )
        if (
            not isinstance(self.max_seconds, Real)
            or isinstance(self.max_seconds, bool)
            or not math.isfinite(self.max_seconds)
            or self.max_samples < 1
        ):
            raise ConfigError(
                f"FrontendConfig.max_seconds: expected a finite number of seconds holding at least one "
                f"sample at {self.sample_rate} Hz, got {self.max_seconds!r}"
            )
        if self.mono not in MONO_MODES:
            raise ConfigError(f"FrontendConfig.mono: expected one of {MONO_MODES}, got {self.mono!r}")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            raise ConfigError(
                f"FrontendConfig.resample_quality: expected one of {RESAMPLE_QUALITIES}, got {self.resample_quality!r}"
            )

    @property
    def max_samples(self) -> int:
        """The longest clip, in samples at ``sample_rate``."""
        # The epsilon keeps e.g. 0.57 s * 100 Hz = 56.99999999999999 from losing a sample.
        return math.floor(self.max_seconds * self.sample_rate + 1e-6)


def _check_rate(rate: object, name: str) -> int:
    if not _is_int(rate) or rate <= 0:
        raise AudioError(f"{name}: expected a positive integer sample rate in Hz, got {rate!r}")
    return int(rate)


def validate_samples(samples: object, name: str = "samples") -> np.ndarray:
    """``samples`` as a finite float32 array ``[frames]`` or ``[frames, channels]``, or AudioError.

    Signed integer arrays are taken as PCM and scaled to [-1, 1) by their type's full scale.
    """
    array = np.asarray(samples)
    if array.dtype.kind == "f":
        with np.errstate(over="ignore"):  # float64 values beyond float32 become inf, reported below
            converted = array.astype(np.float32)
    elif array.dtype.kind == "i":
        converted = (array / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    else:
        raise AudioError(f"{name}: expected float or signed-integer PCM samples, got dtype {array.dtype}")
    if converted.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape [frames] or [frames, channels], got {converted.shape}")
    if converted.size == 0:
        raise AudioError(f"{name}: contains no samples (shape {converted.shape})")
    if converted.ndim == 2 and converted.shape[1] > converted.shape[0]:
        raise AudioError(
            f"{name}: shape {converted.shape} has more channels than frames; expected [frames, channels] "
            "(transpose a [channels, frames] array)"
        )
    if not np.isfinite(converted).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return converted


def to_mono(samples: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Mix ``[frames, channels]`` down to ``[frames]`` float32; ``[frames]`` passes through."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise AudioError(f"samples: expected shape [frames] or [frames, channels], got {array.shape}")
    if mode == "mean":
        return array.mean(axis=1, dtype=np.float64).astype(np.float32)
    if mode == "first":
        return np.ascontiguousarray(array[:, 0])
    raise AudioError(f"mode: expected one of {MONO_MODES}, got {mode!r}")


def resample(samples: np.ndarray, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample ``[frames]`` or ``[frames, channels]`` from ``orig_sr`` to ``target_sr`` Hz with soxr.

    The output has ``round(frames * target_sr / orig_sr)`` frames and is float32.
    """
    orig_sr = _check_rate(orig_sr, "orig_sr")
    target_sr = _check_rate(target_sr, "target_sr")
    if quality not in RESAMPLE_QUALITIES:
        raise AudioError(f"quality: expected one of {RESAMPLE_QUALITIES}, got {quality!r}")
    array = np.ascontiguousarray(samples, dtype=np.float32)
    if orig_sr == target_sr:
        return array.copy()
    return soxr.resample(array, orig_sr, target_sr, quality=quality)


def _window_start(length: int, window: int, rng: np.random.Generator | None) -> int:
    """Where a ``window`` of a ``length``-long clip starts: random with an rng, else at 0."""
    return 0 if rng is None else int(rng.integers(0, length - window + 1))


def crop(samples: np.ndarray, max_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """At most ``max_samples`` frames of ``samples`` (along the first axis); never pads.

    With an ``rng`` (training) the window is drawn uniformly; without (evaluation) it is the start.
    """
    if not _is_int(max_samples) or max_samples < 1:
        raise AudioError(f"max_samples: expected a positive integer, got {max_samples!r}")
    if len(samples) <= max_samples:
        return samples
    start = _window_start(len(samples), max_samples, rng)
    return samples[start : start + max_samples]


def pad_batch(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D clips into a zero-padded float32 ``[B, N]`` batch and their ``[B]`` long lengths."""
    if len(clips) == 0:
        raise AudioError("clips: expected at least one clip, got an empty list")
    arrays = [np.asarray(clip, dtype=np.float32) for clip in clips]
    for index, array in enumerate(arrays):
        if array.ndim != 1 or len(array) == 0:
            raise AudioError(f"clips[{index}]: expected a non-empty 1-D array, got shape {array.shape}")
    lengths = torch.tensor([len(array) for array in arrays], dtype=torch.long)
    batch = torch.zeros(len(arrays), int(lengths.max()), dtype=torch.float32)
    for index, array in enumerate(arrays):
        batch[index, : len(array)] = torch.from_numpy(array)
    return batch, lengths


def resampled_length(frames: int, orig_sr: int, target_sr: int) -> int:
    # soxr rounds the output length to the nearest sample (halves up); integer maths avoids float error.
    return (2 * frames * target_sr + orig_sr) // (2 * orig_sr)


@dataclass(frozen=True)
class _Window:
    """Source frames ``[read_start, read_stop)`` to resample, then the slice of the result to keep."""

    read_start: int
    read_stop: int
    keep_start: int
    keep_length: int


def _plan_window(
    frames: int, orig_sr: int, target_sr: int, max_samples: int, rng: np.random.Generator | None
) -> _Window:
    """Choose the crop on the output grid and the source frames that produce it."""
    total = resampled_length(frames, orig_sr, target_sr)
    if total <= max_samples:
        return _Window(0, frames, 0, total)
    return plan_span(frames, orig_sr, target_sr, _window_start(total, max_samples, rng), max_samples)


def plan_span(frames: int, orig_sr: int, target_sr: int, out_start: int, length: int) -> _Window:
    """The source frames to decode for output samples `[out_start, out_start + length)` of a `frames`-long
    source, with enough context for the resampling filter."""
    if orig_sr == target_sr:
        return _Window(out_start, out_start + length, 0, length)
    # A chunk starting at source frame a resamples onto the time grid a/orig_sr + k/target_sr, which
    # coincides with the whole clip's grid only if a * target_sr / orig_sr is whole, i.e. a is a
    # multiple of `step`. Rounding the start down to one costs at most a second of extra decoding.
    step = orig_sr // math.gcd(orig_sr, target_sr)
    context = -(-_CONTEXT_SAMPLES * orig_sr // min(orig_sr, target_sr))
    read_start = max(0, (out_start * orig_sr // target_sr - context) // step * step)
    read_stop = min(frames, -(-(out_start + length) * orig_sr // target_sr) + context)
    keep_start = out_start - read_start * target_sr // orig_sr
    return _Window(read_start, read_stop, keep_start, length)


def _seekable(source: AudioSource) -> AudioSource:
    if hasattr(source, "read") and not (hasattr(source, "seekable") and source.seekable()):
        # The header and then the window are read in two passes, so a pipe is buffered first.
        buffered = io.BytesIO(source.read())
        buffered.name = describe_source(source)
        return buffered
    return source


class AudioFrontend:
    """Turns files or arrays into float32 mono clips at ``config.sample_rate``, at most ``max_seconds``.

    The crop window is drawn on the output grid, so ``load(path, rng)`` and ``process`` of the
    fully decoded file return the same clip for generators in the same state.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        self.config = config if config is not None else FrontendConfig()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def max_samples(self) -> int:
        return self.config.max_samples

    def load(self, source: AudioSource, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode only the window needed from ``source`` and return it as ``[N]`` float32."""
        source = _seekable(source)
        info = audio_info(source)
        window = _plan_window(info.frames, info.sample_rate, self.sample_rate, self.max_samples, rng)
        name = describe_source(source)
        self._check_window(window, info.frames, info.sample_rate, name)
        decoded = read_audio(source, window.read_start, window.read_stop - window.read_start)
        return self._finish(decoded.samples, info.sample_rate, window, name)

    def process(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The same as ``load`` for audio already in memory, ``[frames]`` or ``[frames, channels]``."""
        array = validate_samples(samples)
        sample_rate = _check_rate(sample_rate, "sample_rate")
        window = _plan_window(len(array), sample_rate, self.sample_rate, self.max_samples, rng)
        self._check_window(window, len(array), sample_rate, "samples")
        return self._finish(array[window.read_start : window.read_stop], sample_rate, window, "samples")

    def reader(self, source: AudioSource) -> AudioReader:
        """Any span of ``source`` on demand (long audio read window by window, `mint.audio.windows`)."""
        return AudioReader(self, source=_seekable(source))

    def samples_reader(self, samples: np.ndarray, sample_rate: int) -> AudioReader:
        """Any span of audio already in memory, ``[frames]`` or ``[frames, channels]``."""
        return AudioReader(
            self, samples=validate_samples(samples), sample_rate=_check_rate(sample_rate, "sample_rate")
        )

    def _check_window(self, window: _Window, frames: int, sample_rate: int, name: str) -> None:
        if window.keep_length == 0:
            raise AudioError(
                f"{name}: {frames} frame(s) at {sample_rate} Hz is shorter than one sample at {self.sample_rate} Hz"
            )

    def _finish(self, chunk: np.ndarray, sample_rate: int, window: _Window, name: str) -> np.ndarray:
        mono = to_mono(chunk, self.config.mono)
        out = resample(mono, sample_rate, self.sample_rate, self.config.resample_quality)
        clip = np.ascontiguousarray(out[window.keep_start : window.keep_start + window.keep_length])
        if not np.isfinite(clip).all():
            # Finite float samples near the float32 limit (e.g. a damaged float WAV) overflow in the
            # resampling filter; such values are not audio, and NaN must not reach the encoder.
            peak = float(np.abs(chunk).max())
            raise AudioError(
                f"{name}: samples reach {peak:.3g}, far outside [-1, 1]; resampling them overflowed to NaN/inf"
            )
        return clip


class AudioReader:
    """One input, file or array, of which any span at the front end's rate can be read: a file decodes only
    that span and the resampling filter's context, so reading a long recording a window at a time holds one
    window in memory. ``total`` is its length in output samples."""

    def __init__(
        self,
        frontend: AudioFrontend,
        source: AudioSource | None = None,
        samples: np.ndarray | None = None,
        sample_rate: int | None = None,
    ) -> None:
        self.frontend = frontend
        self._source = source
        self._samples = samples
        if source is not None:
            info = audio_info(source)
            self.name = describe_source(source)
            self._frames, self._rate = info.frames, info.sample_rate
        else:
            self.name = "samples"
            self._frames, self._rate = len(samples), sample_rate
        self.total = resampled_length(self._frames, self._rate, frontend.sample_rate)
        frontend._check_window(_Window(0, self._frames, 0, self.total), self._frames, self._rate, self.name)

    @property
    def seconds(self) -> float:
        return self.total / self.frontend.sample_rate

    def read_seconds(self, start: float, end: float) -> np.ndarray:
        """Seconds ``[start, end)`` at the output rate (rounded to samples), cut at the end."""
        first = round(start * self.frontend.sample_rate)
        return self.read(first, round(end * self.frontend.sample_rate) - first)

    def read(self, start: int, length: int) -> np.ndarray:
        """Output samples ``[start, start + length)``, cut at the end; ``[N]`` float32."""
        length = min(length, self.total - start)
        if start < 0 or length < 1:
            raise AudioError(f"{self.name}: no samples at {start} (it has {self.total})")
        window = plan_span(self._frames, self._rate, self.frontend.sample_rate, start, length)
        if self._source is not None:
            chunk = read_audio(self._source, window.read_start, window.read_stop - window.read_start).samples
        else:
            chunk = self._samples[window.read_start : window.read_stop]
        return self.frontend._finish(chunk, self._rate, window, self.name)
