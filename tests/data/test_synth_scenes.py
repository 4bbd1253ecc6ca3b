import numpy as np
import pytest

from mint.data.synth.events import EVENT_KINDS, SOFT_DBFS, Event
from mint.data.synth.scenes import (
    BACKGROUNDS,
    PEAK_LIMIT,
    PlacedEvent,
    Scene,
    coloured_noise,
    render_scene,
    sample_scene,
)
from mint.errors import ConfigError

SR = 16000


def _scenes(count: int, seed: int = 0, **kwargs) -> list[Scene]:
    return [sample_scene(np.random.default_rng([seed, index]), **kwargs) for index in range(count)]


def test_scenes_hold_distinct_ordered_events_inside_the_clip():
    counts = set()
    for scene in _scenes(60):
        counts.add(len(scene.events))
        assert 1 <= len(scene.events) <= 3
        assert len(set(scene.kinds)) == len(scene.kinds)
        assert scene.background in BACKGROUNDS
        assert 10.0 <= scene.snr_db <= 30.0
        assert scene.events[0].onset >= 0.0
        assert scene.events[-1].offset <= scene.clip_seconds
        for previous, current in zip(scene.events, scene.events[1:], strict=False):
            assert current.onset - previous.onset >= 0.3 - 1e-9
    assert counts == {1, 2, 3}


def test_some_scenes_overlap_and_the_flag_matches_the_times():
    flags = []
    for scene in _scenes(80, seed=1, num_events=2):
        first, second = scene.events
        assert scene.overlaps_previous(1) == (second.onset < first.offset)
        assert not scene.overlaps_previous(0)
        flags.append(scene.overlaps_previous(1))
    assert any(flags) and not all(flags)


def test_restricting_kinds_and_count():
    for scene in _scenes(20, num_events=2, event_kinds=["siren", "bell", "knock"]):
        assert len(scene.events) == 2
        assert set(scene.kinds) <= {"siren", "bell", "knock"}


def test_render_is_deterministic_float32_and_below_full_scale():
    for scene in _scenes(8, seed=2):
        audio = render_scene(scene, SR)
        assert audio.dtype == np.float32
        assert audio.shape == (round(scene.clip_seconds * SR),)
        assert np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) <= PEAK_LIMIT + 1e-6
        np.testing.assert_array_equal(audio, render_scene(scene, SR))


def _loud_scene(background: str, snr_db: float) -> Scene:
    event = Event(
        kind="tone",
        loudness="loud",
        seconds=1.0,
        level_dbfs=-20.0,
        duration="long",
        pitch="high",
        pitch_hz=1000.0,
    )
    return Scene((PlacedEvent(event, 1.0),), background, snr_db, 4.0, seed=5)


@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_background_sits_snr_below_a_soft_event_and_the_event_is_where_placed(snr_db):
    audio = render_scene(_loud_scene("white", snr_db), SR).astype(np.float64)
    outside = np.concatenate([audio[: SR // 2], audio[int(2.5 * SR) :]])
    measured = 20 * np.log10(np.sqrt(np.mean(outside**2)))
    assert measured == pytest.approx(SOFT_DBFS - snr_db, abs=0.5)
    inside = audio[int(1.1 * SR) : int(1.9 * SR)]
    # A -20 dBFS sine has RMS 0.1 on its own; the weak noise adds almost nothing.
    assert np.sqrt(np.mean(inside**2)) == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours_have_their_spectral_slope(colour, slope):
    noise = coloured_noise(colour, 64 * 1024, np.random.default_rng(0))
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    frames = noise.reshape(-1, 1024) * np.hanning(1024)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    band = (freqs >= 200) & (freqs <= 6000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)


def test_impossible_requests_are_rejected():
    with pytest.raises(ConfigError, match="num_events"):
        sample_scene(np.random.default_rng(0), num_events=3, event_kinds=["siren", "bell"])
    with pytest.raises(ConfigError, match="clip_seconds"):
        sample_scene(np.random.default_rng(0), num_events=3, clip_seconds=1.0)
    with pytest.raises(ConfigError, match="event kinds"):
        sample_scene(np.random.default_rng(0), event_kinds=["siren", "violin"])
    with pytest.raises(ConfigError, match="background"):
        coloured_noise("purple", 100, np.random.default_rng(0))


def test_every_kind_can_fill_the_shortest_allowed_three_event_clip():
    for scene in _scenes(30, seed=4, num_events=3, clip_seconds=2.7):
        assert scene.events[-1].offset <= 2.7
        assert set(scene.kinds) <= set(EVENT_KINDS)
