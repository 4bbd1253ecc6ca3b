"""Sound events of the synthetic corpus: what each kind is, how its attributes are drawn, how it sounds.

Every kind occupies its own region of a 16 kHz log-mel spectrogram (band, harmonic pattern and
temporal texture), so a classifier can tell the kinds apart and the captions built from them are
grounded in the audio. Attributes are coarse classes with wide gaps between them:

* loudness: "loud" events are 12 dB above "soft" ones (RMS of the loudest 25 ms, absolute, not
  relative to the mix);
* duration: "short" (0.25-0.5 s) or "long" (0.9-1.3 s), for kinds that are not repeated;
* pitch: "low" or "high", an octave or more apart, for kinds that come in both registers;
* repetitions: 2-4 for kinds made of separate strikes (knock, beep).

Speech (`SPEECH`) is an event kind of its own, drawn only when a corpus asks for spoken words: one word
of `mint.data.synth.speech.WORDS` said by an espeak-ng voice, at a loud or soft level like the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mint.data.synth.speech import WORDS, Voice, speak, voices
from mint.errors import ConfigError, DataError

LOUD_DBFS = -20.0
SOFT_DBFS = -32.0
_LEVEL_JITTER_DB = 1.5
_SHORT_SECONDS = (0.25, 0.5)
_LONG_SECONDS = (0.9, 1.3)
_STRIKE_SPACING = (0.14, 0.22)
_STRIKE_TAIL = 0.12
_REPETITIONS = (2, 4)


@dataclass(frozen=True)
class Event:
    """One sound event. `pitch_hz` is its characteristic frequency (None for unpitched kinds)."""

    kind: str
    loudness: str
    seconds: float
    level_dbfs: float
    duration: str | None = None
    pitch: str | None = None
    pitch_hz: float | None = None
    repetitions: int = 1
    word: str | None = None  # speech only: the word said, and by which voice
    voice: Voice | None = None


Renderer = Callable[[Event, int, np.random.Generator], np.ndarray]


def _time(seconds: float, sample_rate: int) -> np.ndarray:
    return np.arange(round(seconds * sample_rate)) / sample_rate


def _ramp(length: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))


def _fade(n: int, sample_rate: int, attack: float = 0.01, release: float = 0.03) -> np.ndarray:
    """Raised-cosine on/off ramps, so no event starts or stops with a broadband click of its own."""
    envelope = np.ones(n)
    rise = min(int(attack * sample_rate), n // 2)
    fall = min(int(release * sample_rate), n // 2)
    if rise:
        envelope[:rise] = _ramp(rise)
    if fall:
        envelope[n - fall :] *= _ramp(fall)[::-1]
    return envelope


def _harmonics(
    phase: np.ndarray, frequency: np.ndarray | float, amplitudes: list[float], nyquist: float
) -> np.ndarray:
    """Sum of harmonics of an instantaneous phase, dropping any that would alias."""
    out = np.zeros_like(phase)
    for order, amplitude in enumerate(amplitudes, start=1):
        if np.max(frequency) * order < 0.95 * nyquist:
            out += amplitude * np.sin(order * phase)
    return out


def _phase(frequency: np.ndarray, sample_rate: int) -> np.ndarray:
    return 2.0 * np.pi * np.cumsum(frequency) / sample_rate


def _strike_onsets(event: Event, sample_rate: int) -> list[int]:
    spacing = (event.seconds - _STRIKE_TAIL) / max(event.repetitions - 1, 1)
    return [round(k * spacing * sample_rate) for k in range(event.repetitions)]


def _render_tone(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = _time(event.seconds, sample_rate)
    return np.sin(2 * np.pi * event.pitch_hz * t + rng.uniform(0, 2 * np.pi)) * _fade(len(t), sample_rate)


def _render_sweep(event: Event, sample_rate: int, rng: np.random.Generator, rising: bool) -> np.ndarray:
    """Exponential sweep over about two octaves centred (geometrically) on the event's pitch."""
    t = _time(event.seconds, sample_rate)
    half_span = 2.0 ** rng.uniform(0.9, 1.1)
    start, stop = event.pitch_hz / half_span, event.pitch_hz * half_span
    if not rising:
        start, stop = stop, start
    frequency = start * (stop / start) ** (t / event.seconds)
    wave = _harmonics(_phase(frequency, sample_rate), frequency, [1.0, 0.6, 0.4], sample_rate / 2)
    return wave * _fade(len(t), sample_rate)


def _render_rising(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    return _render_sweep(event, sample_rate, rng, rising=True)


def _render_falling(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    return _render_sweep(event, sample_rate, rng, rising=False)


def _render_noise_burst(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    n = round(event.seconds * sample_rate)
    return rng.standard_normal(n) * _fade(n, sample_rate, attack=0.005, release=0.05)


def _render_click_train(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Bright ticks at a steady 8-14 per second: each a very short, sharply struck high resonance."""
    n = round(event.seconds * sample_rate)
    out = np.zeros(n)
    length = round(0.012 * sample_rate)
    t = np.arange(length) / sample_rate
    # Starting the resonance at its crest makes the attack an audible click, not a soft onset.
    tick = np.cos(2 * np.pi * rng.uniform(5500.0, 6500.0) * t) * np.exp(-t / 0.003)
    period = sample_rate / rng.uniform(8.0, 14.0)
    for onset in np.arange(0.0, n - length, period).astype(int):
        out[onset : onset + length] += tick
    return out


def _render_siren(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Wailing siren: pitch glides up and down half an octave around the centre, with buzzy harmonics."""
    t = _time(event.seconds, sample_rate)
    rate = rng.uniform(1.5, 2.5)
    triangle = 2.0 * np.abs(2.0 * ((t * rate + rng.uniform()) % 1.0) - 1.0) - 1.0
    frequency = event.pitch_hz * 2.0 ** (0.5 * triangle)
    wave = _harmonics(_phase(frequency, sample_rate), frequency, [1.0, 0.5, 0.33, 0.25], sample_rate / 2)
    return wave * _fade(len(t), sample_rate)


def _render_engine(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Low sawtooth-like drone whose amplitude throbs at the firing rate of the cylinders."""
    t = _time(event.seconds, sample_rate)
    frequency = event.pitch_hz * (1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t))
    amplitudes = [1.0 / k for k in range(1, 25)]
    wave = _harmonics(_phase(frequency, sample_rate), frequency, amplitudes, sample_rate / 2)
    throb = 1.0 + 0.6 * np.sin(2 * np.pi * rng.uniform(8.0, 14.0) * t)
    return wave * throb * _fade(len(t), sample_rate, attack=0.05, release=0.08)


def _render_bird(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Quick downward-swooping syllables with a fast vibrato, several per second."""
    n = round(event.seconds * sample_rate)
    out = np.zeros(n)
    period = round(rng.uniform(0.09, 0.14) * sample_rate)
    syllable = round(rng.uniform(0.045, 0.07) * sample_rate)
    t = np.arange(syllable) / sample_rate
    vibrato = 1.0 + 0.06 * np.sin(2 * np.pi * rng.uniform(40.0, 60.0) * t)
    frequency = event.pitch_hz * np.linspace(1.25, 0.8, syllable) * vibrato
    chirp = np.sin(_phase(frequency, sample_rate)) * np.hanning(syllable)
    for start in range(0, n - syllable + 1, period):
        out[start : start + syllable] += chirp
    return out


def _render_knock(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Dull wooden strikes: two damped low resonances plus a short low-passed thud."""
    n = round(event.seconds * sample_rate)
    out = np.zeros(n)
    length = round(0.1 * sample_rate)
    t = np.arange(length) / sample_rate
    resonance = rng.uniform(150.0, 200.0)
    for onset in _strike_onsets(event, sample_rate):
        thud = np.convolve(rng.standard_normal(length), np.ones(12) / 12, mode="same") * np.exp(-t / 0.01)
        body = np.sin(2 * np.pi * resonance * t) + 0.5 * np.sin(2 * np.pi * 2.9 * resonance * t)
        strike = body * np.exp(-t / 0.03) + 2.0 * thud
        stop = min(onset + length, n)
        out[onset:stop] += strike[: stop - onset]
    return out


_BELL_RATIOS = (1.0, 2.76, 5.40, 8.93)


def _render_bell(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Struck bar: inharmonic partials, the higher ones dying away faster."""
    t = _time(event.seconds, sample_rate)
    decay = event.seconds / 4.0
    out = np.zeros_like(t)
    for index, ratio in enumerate(_BELL_RATIOS):
        frequency = event.pitch_hz * ratio
        if frequency < 0.95 * sample_rate / 2:
            partial = np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
            out += (1.0 - 0.2 * index) * partial * np.exp(-t * (1.0 + 0.5 * index) / decay)
    return out * _fade(len(t), sample_rate, attack=0.002, release=0.02)


def _render_beep(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Electronic beeps: short square-ish tones (odd harmonics) separated by silence."""
    n = round(event.seconds * sample_rate)
    out = np.zeros(n)
    length = round(rng.uniform(0.07, 0.1) * sample_rate)
    phase = 2 * np.pi * event.pitch_hz * np.arange(length) / sample_rate
    beep = _harmonics(phase, event.pitch_hz, [1.0, 0.0, 0.33, 0.0, 0.2], sample_rate / 2)
    beep *= _fade(length, sample_rate, attack=0.005, release=0.01)
    for onset in _strike_onsets(event, sample_rate):
        stop = min(onset + length, n)
        out[onset:stop] += beep[: stop - onset]
    return out


@dataclass(frozen=True)
class _Kind:
    render: Renderer
    pitch_ranges: dict[str | None, tuple[float, float]] | None
    repeated: bool = False


_KINDS: dict[str, _Kind] = {
    "tone": _Kind(_render_tone, {"low": (300.0, 360.0), "high": (900.0, 1080.0)}),
    "rising chirp": _Kind(_render_rising, {None: (550.0, 700.0)}),
    "falling chirp": _Kind(_render_falling, {None: (2200.0, 2700.0)}),
    "noise burst": _Kind(_render_noise_burst, None),
    "click train": _Kind(_render_click_train, None),
    "siren": _Kind(_render_siren, {None: (800.0, 1000.0)}),
    "engine hum": _Kind(_render_engine, {None: (45.0, 75.0)}),
    "bird chirp": _Kind(_render_bird, {None: (3000.0, 4000.0)}),
    "knock": _Kind(_render_knock, None, repeated=True),
    "bell": _Kind(_render_bell, {"low": (500.0, 600.0), "high": (1300.0, 1560.0)}),
    "beep": _Kind(_render_beep, {"low": (700.0, 820.0), "high": (1800.0, 2100.0)}, repeated=True),
}

EVENT_KINDS: tuple[str, ...] = tuple(_KINDS)
SPEECH = "speech"
# Spoken words are measured at this rate when drawn, so a scene's timing does not depend on the output rate.
_SPEECH_TIMING_RATE = 16000


@lru_cache(maxsize=4096)
def _spoken(word: str, voice: Voice, sample_rate: int) -> np.ndarray:
    spoken = speak(word, voice, sample_rate)
    spoken.flags.writeable = False
    return spoken


def sample_speech_event(rng: np.random.Generator, split: str) -> Event:
    """One spoken word of `WORDS` in a voice of `split` ("train" or "held_out"), loud or soft."""
    word = WORDS[int(rng.integers(len(WORDS)))]
    choices = voices(split)
    voice = choices[int(rng.integers(len(choices)))]
    loudness = "loud" if rng.random() < 0.5 else "soft"
    level = (LOUD_DBFS if loudness == "loud" else SOFT_DBFS) + rng.uniform(
        -_LEVEL_JITTER_DB, _LEVEL_JITTER_DB
    )
    seconds = len(_spoken(word, voice, _SPEECH_TIMING_RATE)) / _SPEECH_TIMING_RATE
    return Event(
        kind=SPEECH, loudness=loudness, seconds=seconds, level_dbfs=float(level), word=word, voice=voice
    )


def check_kinds(kinds: list[str] | tuple[str, ...], where: str) -> None:
    unknown = [kind for kind in kinds if kind not in _KINDS]
    if unknown or not kinds:
        raise ConfigError(
            f"{where}: expected a non-empty list of event kinds from {list(EVENT_KINDS)}, got {kinds!r}"
        )


def sample_event(rng: np.random.Generator, kind: str) -> Event:
    """Draw the attributes of one event of `kind` (its rendering randomness is drawn at render time)."""
    check_kinds([kind], "sample_event kind")
    spec = _KINDS[kind]
    loudness = "loud" if rng.random() < 0.5 else "soft"
    level = (LOUD_DBFS if loudness == "loud" else SOFT_DBFS) + rng.uniform(
        -_LEVEL_JITTER_DB, _LEVEL_JITTER_DB
    )
    pitch, pitch_hz = None, None
    if spec.pitch_ranges is not None:
        classes = list(spec.pitch_ranges)
        pitch = classes[rng.integers(len(classes))]
        low, high = spec.pitch_ranges[pitch]
        pitch_hz = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    if spec.repeated:
        repetitions = int(rng.integers(_REPETITIONS[0], _REPETITIONS[1] + 1))
        seconds = (repetitions - 1) * rng.uniform(*_STRIKE_SPACING) + _STRIKE_TAIL
        duration = None
    else:
        repetitions = 1
        duration = "short" if rng.random() < 0.5 else "long"
        seconds = rng.uniform(*(_SHORT_SECONDS if duration == "short" else _LONG_SECONDS))
    return Event(
        kind=kind,
        loudness=loudness,
        seconds=float(seconds),
        level_dbfs=float(level),
        duration=duration,
        pitch=pitch,
        pitch_hz=pitch_hz,
        repetitions=repetitions,
    )


def _peak_short_time_rms(wave: np.ndarray, sample_rate: int) -> float:
    """Loudest 25 ms window: a level measure that treats sparse (clicks, knocks) and dense events alike."""
    window = max(1, min(len(wave), round(0.025 * sample_rate)))
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    return float(np.sqrt(np.max(energy[window:] - energy[:-window]) / window))


def render_event(event: Event, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Float32 waveform of `round(event.seconds * sample_rate)` samples at the event's level."""
    if event.kind == SPEECH:
        wave = np.array(_spoken(event.word, event.voice, sample_rate))
    elif event.kind in _KINDS:
        wave = _KINDS[event.kind].render(event, sample_rate, rng)
    else:
        raise DataError(
            f"render_event: unknown event kind {event.kind!r}; expected one of {[*EVENT_KINDS, SPEECH]}"
        )
    level = _peak_short_time_rms(wave, sample_rate)
    if level > 0.0:
        wave = wave * (10.0 ** (event.level_dbfs / 20.0) / level)
    return wave.astype(np.float32)
