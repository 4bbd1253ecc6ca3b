import numpy as np
import pytest

from mint.data.synth.events import EVENT_KINDS, LOUD_DBFS, SOFT_DBFS, Event, render_event, sample_event
from mint.errors import ConfigError, MintError

SR = 16000


def _events(kind: str, count: int, seed: int = 0) -> list[tuple[Event, np.ndarray]]:
    out = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        event = sample_event(rng, kind)
        out.append((event, render_event(event, SR, rng)))
    return out


def _frame_power(wave: np.ndarray, frame: int = 400, hop: int = 160) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(wave.astype(np.float64), frame)[::hop]
    return (frames**2).mean(axis=1)


def test_at_least_ten_kinds():
    assert len(EVENT_KINDS) >= 10
    assert len(set(EVENT_KINDS)) == len(EVENT_KINDS)


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_every_kind_renders_finite_audio_of_its_length(kind, sample_rate):
    for index in range(4):
        rng = np.random.default_rng(index)
        event = sample_event(rng, kind)
        wave = render_event(event, sample_rate, rng)
        assert wave.dtype == np.float32
        assert wave.shape == (round(event.seconds * sample_rate),)
        assert np.all(np.isfinite(wave))
        assert np.max(np.abs(wave)) < 1.0
        assert np.max(np.abs(wave)) > 0.01


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_attributes_follow_the_kind(kind):
    for event, _ in _events(kind, 12):
        assert event.kind == kind
        assert event.loudness in ("loud", "soft")
        assert event.duration in (None, "short", "long")
        assert event.pitch in (None, "low", "high")
        if event.duration == "short":
            assert event.seconds <= 0.5
        if event.duration == "long":
            assert event.seconds >= 0.9
        if event.repetitions > 1:
            assert event.duration is None
            assert 2 <= event.repetitions <= 4


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_level_is_the_loudest_25ms_window(kind):
    for event, wave in _events(kind, 4):
        loudest = np.sqrt(_frame_power(wave, frame=400, hop=1).max())
        assert 20 * np.log10(loudest) == pytest.approx(event.level_dbfs, abs=0.05)
        nominal = LOUD_DBFS if event.loudness == "loud" else SOFT_DBFS
        assert abs(event.level_dbfs - nominal) <= 1.5


def test_loud_events_are_louder_than_soft_ones_of_any_kind():
    loud, soft = [], []
    for kind in EVENT_KINDS:
        for event, wave in _events(kind, 16, seed=7):
            level = 10 * np.log10(np.percentile(_frame_power(wave), 90))
            (loud if event.loudness == "loud" else soft).append(level)
    assert loud and soft
    assert min(loud) > max(soft) + 3.0


def _peak_frequency(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=1 << 16))
    return float(np.argmax(spectrum) * SR / (1 << 16))


@pytest.mark.parametrize("kind", ["tone", "bell", "beep"])
def test_pitch_is_the_strongest_frequency(kind):
    lows, highs = [], []
    for event, wave in _events(kind, 16):
        assert _peak_frequency(wave) == pytest.approx(event.pitch_hz, rel=0.02)
        (highs if event.pitch == "high" else lows).append(event.pitch_hz)
    assert lows and highs
    assert min(highs) >= 1.9 * max(lows)


def _dominant_frequency_track(wave: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(wave, 1024)[::256] * np.hanning(1024)
    return np.argmax(np.abs(np.fft.rfft(frames, axis=1)), axis=1) * SR / 1024


@pytest.mark.parametrize(("kind", "sign"), [("rising chirp", 1), ("falling chirp", -1)])
def test_chirps_sweep_in_their_direction(kind, sign):
    for _, wave in _events(kind, 6):
        track = _dominant_frequency_track(wave)
        third = max(1, len(track) // 3)
        assert sign * (np.median(track[-third:]) - np.median(track[:third])) > 0
        assert np.max(track) / np.min(track) > 2.0


def _count_bursts(wave: np.ndarray) -> int:
    power = _frame_power(wave, frame=160, hop=80)
    active = power > power.max() * 10 ** (-25 / 10)
    return int(np.sum(active[1:] & ~active[:-1]) + active[0])


@pytest.mark.parametrize("kind", ["knock", "beep"])
def test_repetitions_are_separate_strikes(kind):
    for event, wave in _events(kind, 10):
        assert _count_bursts(wave) == event.repetitions


def test_same_generator_state_renders_identically():
    first = _events("siren", 3, seed=11)
    second = _events("siren", 3, seed=11)
    for (event_a, wave_a), (event_b, wave_b) in zip(first, second, strict=True):
        assert event_a == event_b
        np.testing.assert_array_equal(wave_a, wave_b)


def test_unknown_kind_is_rejected():
    with pytest.raises(ConfigError, match="event kinds"):
        sample_event(np.random.default_rng(0), "trumpet")
    bogus = Event(kind="trumpet", loudness="loud", seconds=0.5, level_dbfs=-20.0)
    with pytest.raises(MintError, match="trumpet"):
        render_event(bogus, SR, np.random.default_rng(0))
