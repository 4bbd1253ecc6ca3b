"""Long recordings: their layout (duration, rate, gaps, bounds), determinism per (seed, index), text,
chunked rendering (chunk-size independent, seamless noise joins, events across chunk boundaries,
bounded memory) and the resumable corpus and its CLI."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.cli.main import main
from mint.data.manifest import TimedEvent, read_manifest
from mint.data.synth import long_scenes
from mint.data.synth.corpus import SynthSpec, generate_corpus
from mint.data.synth.events import EVENT_KINDS, SOFT_DBFS, Event, render_event, sample_event
from mint.data.synth.long_scenes import (
    NOISE_CROSSFADE_SECONDS,
    NOISE_SEGMENT_SECONDS,
    LongSceneSpec,
    background_span,
    build_long_recording,
    generate_long_corpus,
    iter_long_audio,
    long_captions,
    long_example,
    long_labels,
    long_question_answers,
    long_recording_id,
    render_long_recording,
    sample_long_recording,
)
from mint.errors import ConfigError, DataError

SR = 16000
LSB = 1.0 / 32768
MS_MARGIN = round(0.0005 * SR) + 1  # manifest times are to the millisecond


# Layout


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"num_recordings": 0}, "long.num_recordings"),
        ({"num_recordings": 2, "seed": -1}, "long.seed"),
        ({"num_recordings": 2, "sample_rate": 8000}, "long.sample_rate"),
        ({"num_recordings": 2, "min_seconds": 4.0}, "long.min_seconds"),
        ({"num_recordings": 2, "min_seconds": 60.0, "max_seconds": 30.0}, "long.max_seconds"),
        ({"num_recordings": 2, "events_per_minute": 0.0}, "long.events_per_minute"),
        ({"num_recordings": 2, "events_per_minute": 40.0}, "long.events_per_minute"),
        ({"num_recordings": 2, "event_kinds": ["siren", "harp"]}, "long.event_kinds"),
        ({"num_recordings": 2, "event_kinds": ["siren", "siren"]}, "long.event_kinds"),
        ({"num_recordings": 2, "snr_db_range": (30.0, 10.0)}, "long.snr_db_range"),
    ],
)
def test_bad_specs_are_rejected_naming_the_field(fields, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        LongSceneSpec(**fields)


@pytest.mark.parametrize(
    ("min_seconds", "max_seconds", "rate"), [(60.0, 120.0, 4.0), (20.0, 30.0, 15.0), (5.0, 5.0, 60.0 / 5.0)]
)
def test_durations_are_uniform_tenths_and_events_come_at_the_expected_rate(min_seconds, max_seconds, rate):
    count = 300
    spec = LongSceneSpec(
        count, seed=1, min_seconds=min_seconds, max_seconds=max_seconds, events_per_minute=rate
    )
    recordings = [sample_long_recording(spec, index) for index in range(count)]
    seconds = np.array([recording.seconds for recording in recordings])
    assert np.all((seconds >= min_seconds) & (seconds <= max_seconds))
    assert np.allclose(seconds * 10, np.round(seconds * 10))
    # Uniform: the mean within 4 standard errors of the middle (sd of a uniform is width / sqrt 12).
    width = max_seconds - min_seconds
    assert abs(seconds.mean() - (min_seconds + max_seconds) / 2) <= 4 * width / math.sqrt(12 * count) + 1e-9
    # The count is Poisson-like, so its total has a standard deviation of about sqrt(expected total).
    expected = rate * seconds.sum() / 60.0
    events = sum(len(recording.events) for recording in recordings)
    assert abs(events - expected) <= 4 * math.sqrt(expected), (events, expected)


def test_events_are_separated_by_silence_and_inside_the_bounds():
    spec = LongSceneSpec(60, seed=2, min_seconds=5.0, max_seconds=40.0, events_per_minute=18.0)
    long_gaps = 0
    for index in range(spec.num_recordings):
        example = long_example(spec, index)
        recording = example.recording
        assert recording.background in ("white", "pink", "brown")
        assert 10.0 <= recording.snr_db <= 30.0
        assert set(recording.kinds) <= set(EVENT_KINDS)
        # Both the exact times and the manifest's millisecond times keep the rules.
        exact = [(placed.onset, placed.onset + placed.event.seconds) for placed in recording.events]
        written = [(event.onset, event.offset) for event in example.events]
        for spans in (exact, written):
            assert spans[0][0] >= 1.0
            assert spans[-1][1] <= recording.seconds - 1.0 + 1e-9
            for (_, offset), (onset, _) in itertools.pairwise(spans):
                assert onset - offset >= 1.0 - 1e-9
                long_gaps += onset - offset > 3.0
        assert written == [(round(a, 3), round(b, 3)) for a, b in exact]
        assert [event.label for event in example.events] == recording.kinds
    assert long_gaps > 20  # the silences vary; not every gap is the minimum


def test_only_the_spec_kinds_are_drawn_and_kinds_repeat():
    spec = LongSceneSpec(20, seed=3, min_seconds=60.0, max_seconds=60.0, event_kinds=["siren", "bell"])
    kinds = [long_example(spec, index).recording.kinds for index in range(20)]
    assert {kind for recording in kinds for kind in recording} == {"siren", "bell"}
    assert any(len(recording) > len(set(recording)) for recording in kinds)


def test_recording_i_depends_on_seed_and_index_alone():
    spec = LongSceneSpec(8, seed=4, min_seconds=10.0, max_seconds=30.0, events_per_minute=10.0)
    forward = [long_example(spec, index) for index in range(8)]
    backward = [long_example(spec, index) for index in reversed(range(8))][::-1]
    assert forward == backward
    bigger = dataclasses.replace(spec, num_recordings=50)
    assert long_example(bigger, 5) == forward[5]
    assert forward[0].recording != forward[1].recording
    assert long_example(dataclasses.replace(spec, seed=5), 0).recording != forward[0].recording
    assert long_recording_id(spec, 5) == "synth-long-s4-000005"
    with pytest.raises(DataError, match="index"):
        long_example(spec, 8)


# Text


def _hand_recording():
    siren = Event("siren", "loud", 1.0, -20.0, duration="long", pitch_hz=900.0)
    knock = Event("knock", "soft", 0.5, -32.0, repetitions=3)
    # Given out of order; the recording sorts them by onset.
    return build_long_recording(
        180.0, [(siren, 100.26), (knock, 72.0), (siren, 47.3)], background="pink", snr_db=20.0, seed=3
    )


def test_hand_worked_long_recording_text():
    recording = _hand_recording()
    assert [placed.onset for placed in recording.events] == [47.3, 72.0, 100.26]
    assert long_captions(recording) == [
        "a siren at 0:47, then a knock at 1:12, then a siren at 1:40",
        "a long loud siren at 0:47, then three soft knocks at 1:12, then a long loud siren at 1:40",
        "a 3-minute recording with three sounds over pink noise",
        "a siren twice and a knock once over pink noise",
    ]
    assert long_labels(recording) == ["siren", "knock"]
    qa = {
        pair.question: pair.answer
        for pair in long_question_answers(recording, np.random.default_rng(0), ["siren", "knock", "bell"])
    }
    assert qa == {
        "how many sounds are there?": "three",
        "what is the first sound?": "siren",
        "what is the last sound?": "siren",
        "when does the first siren start?": "at 47.3 seconds",
        "when does the last siren end?": "at 101.3 seconds",  # 100.26 + 1.0
        "how many times is the siren heard?": "two",
        "what happens after the first siren?": "someone knocks three times softly",
        "when does the first knocking start?": "at 72.0 seconds",
        "how many times is the knocking heard?": "one",
        "what happens after the knocking?": "a siren wails loudly for a long time",
        "how many times is the bell heard?": "zero",
        "what kind of background noise is there?": "pink noise",
    }


def test_length_phrases_and_an_empty_recording():
    assert long_captions(build_long_recording(8.2, [], background="white")) == [
        "an 8-second recording with zero sounds over white noise",
        "white noise alone",
    ]
    assert long_captions(build_long_recording(45.0, []))[0].startswith("a 45-second recording")
    assert long_captions(build_long_recording(660.0, []))[0].startswith("an 11-minute recording")
    assert long_captions(build_long_recording(3600.0, []))[0].startswith("a 60-minute recording")


def test_explicit_recordings_are_checked():
    siren = sample_event(np.random.default_rng(0), "siren")
    with pytest.raises(ConfigError, match=r"events\[0\].*after the recording"):
        build_long_recording(10.0, [(siren, 10.0 - siren.seconds / 2)])
    with pytest.raises(ConfigError, match=r"events\[0\]: onset"):
        build_long_recording(10.0, [(siren, -1.0)])
    with pytest.raises(ConfigError, match="background"):
        build_long_recording(10.0, [], background="purple")
    with pytest.raises(ConfigError, match="seconds"):
        build_long_recording(0.0, [])


# Rendering


def _chunks(recording, chunk_seconds: float) -> list[np.ndarray]:
    return list(iter_long_audio(recording, SR, chunk_seconds))


def test_the_samples_do_not_depend_on_the_chunk_size():
    spec = LongSceneSpec(1, seed=6, min_seconds=12.0, max_seconds=12.0, events_per_minute=20.0)
    recording = sample_long_recording(spec, 0)
    whole = _chunks(recording, 100.0)
    assert len(whole) == 1 and whole[0].shape == (12 * SR,) and whole[0].dtype == np.float32
    for chunk_seconds in (0.7, 2.0, 3.3):
        chunks = _chunks(recording, chunk_seconds)
        assert [len(chunk) for chunk in chunks[:-1]] == [round(chunk_seconds * SR)] * (len(chunks) - 1)
        np.testing.assert_array_equal(np.concatenate(chunks), whole[0])


def test_an_event_across_a_chunk_boundary_is_rendered_whole(tmp_path):
    siren = sample_event(np.random.default_rng(1), "siren")
    onset = 2.0 - siren.seconds / 2  # straddles the boundary at 2.0 s of 2-second chunks
    recording = build_long_recording(6.0, [(siren, onset)], background="brown", snr_db=15.0, seed=11)
    chunked = sf.read(render_long_recording(recording, tmp_path / "chunked.wav", chunk_seconds=2.0))[0]
    tiny = sf.read(render_long_recording(recording, tmp_path / "tiny.wav", chunk_seconds=0.05))[0]
    alone = sf.read(render_long_recording(recording, tmp_path / "alone.wav", chunk_seconds=100.0))[0]
    np.testing.assert_array_equal(chunked, alone)
    np.testing.assert_array_equal(tiny, alone)
    # The event alone, as render_scene would draw it (stream 1 of the seed; the background has 0), in one
    # piece; the file less its background (the same recording without the event) must be it, to within
    # the two files' rounding to 16 bits.
    background = sf.read(
        render_long_recording(
            dataclasses.replace(recording, events=()), tmp_path / "bg.wav", chunk_seconds=2.0
        )
    )[0]
    expected = np.zeros(6 * SR)
    wave = render_event(siren, SR, np.random.default_rng(np.random.SeedSequence(11).spawn(2)[1]))
    start = round(onset * SR)
    expected[start : start + len(wave)] = wave
    assert start < 2 * SR < start + len(wave)
    np.testing.assert_allclose(chunked - background, expected, atol=LSB + 1e-9)


def test_a_failed_render_leaves_no_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        yield np.zeros(SR, dtype=np.float32)
        raise RuntimeError("disk full")

    monkeypatch.setattr(long_scenes, "iter_long_audio", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        render_long_recording(build_long_recording(5.0, []), tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


def _zone_power(signal: np.ndarray, centres: np.ndarray, half: int) -> float:
    return float(np.mean([np.mean(signal[c - half : c + half] ** 2) for c in centres]))


def _band_spectrum(signal: np.ndarray, centres: np.ndarray) -> np.ndarray:
    window = np.hanning(1024)
    return np.mean([np.abs(np.fft.rfft(signal[c - 512 : c + 512] * window)) ** 2 for c in centres], axis=0)


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_background_noise_joins_without_level_or_spectrum_change(colour):
    """The background is made of independent segments crossfaded at fixed joins (chunk boundaries are
    not joins: the samples are the same whatever the chunk size, tested above). Power and spectrum in
    the crossfade zones are compared with the middles of the segments, averaged over 149 joins.

    Tolerances: the first difference of the noise (its power is where a click or a dip would show; for
    pink and brown it whitens the spectrum, so 0.1 s holds many independent samples) and white noise
    itself have power estimates good to about 1% over 149 zones of 1,600 samples (measured 0.1-1.2%);
    a linear instead of an equal-power crossfade would lose 33% in the zone, a cut would add a
    broadband step. Octave-band spectra from 149 Hann windows of 1,024 samples sum >= 8 bins each, so
    a band's estimate is good to ~0.3 dB (measured <= 0.22 dB); 1 dB is a level anyone would hear as
    a change only at several dB, so 1 dB is tight for audibility and loose for chance."""
    hop, fade = round(NOISE_SEGMENT_SECONDS * SR), round(NOISE_CROSSFADE_SECONDS * SR)
    seconds = 300
    noise = background_span(colour, np.random.SeedSequence(21), SR, 0, seconds * SR)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=0.02)
    joins = np.arange(1, seconds * SR // hop) * hop - fade // 2  # centres of the crossfade zones
    middles = joins - hop // 2
    step = np.diff(noise, prepend=noise[0])
    assert _zone_power(step, joins, fade // 2) / _zone_power(step, middles, fade // 2) == pytest.approx(
        1.0, abs=0.05
    )
    if colour == "white":
        assert _zone_power(noise, joins, fade // 2) / _zone_power(noise, middles, fade // 2) == pytest.approx(
            1.0, abs=0.05
        )
    # No sample-to-sample step at a join larger than the largest one elsewhere.
    zones = np.zeros(len(noise), dtype=bool)
    for centre in joins:
        zones[centre - fade : centre + fade] = True
    assert np.max(np.abs(step[zones])) <= np.max(np.abs(step[~zones]))
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    at_joins, in_middles = _band_spectrum(noise, joins), _band_spectrum(noise, middles)
    for low in (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0):
        band = (freqs >= low) & (freqs < 2 * low)
        ratio_db = 10 * np.log10(at_joins[band].sum() / in_middles[band].sum())
        assert abs(ratio_db) < 1.0, (low, ratio_db)


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_background_noise_has_its_colour(colour, slope):
    noise = background_span(colour, np.random.SeedSequence(5), SR, 3 * SR, 3 * SR + 64 * 1024)
    frames = noise.reshape(-1, 1024) * np.hanning(1024)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    band = (freqs >= 200) & (freqs <= 6000)
    assert np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0] == pytest.approx(slope, abs=0.15)


def test_rendering_memory_is_bounded_by_the_chunk_not_the_recording(tmp_path):
    recording = sample_long_recording(LongSceneSpec(1, seed=7, min_seconds=600.0, max_seconds=600.0), 0)
    chunk_seconds = 5.0
    chunk_bytes = chunk_seconds * SR * 8  # one chunk of float64 samples: 0.64 MB
    whole_bytes = recording.seconds * SR * 8  # the recording held whole: 76.8 MB
    tracemalloc.start()
    try:
        render_long_recording(recording, tmp_path / "ten-minutes.wav", chunk_seconds=chunk_seconds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sf.info(str(tmp_path / "ten-minutes.wav")).frames == 600 * SR
    # The mix and its float32 copy are chunk-sized; one noise segment's FFTs (2.1 s of samples, a few
    # complex arrays) and the events overlapping a chunk are a fixed ~2 MB on top (measured 3.2 MB).
    assert peak < 3 * chunk_bytes + 4e6, peak
    assert peak < whole_bytes / 10


# Audio against the manifest, the corpus and the CLI


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def _peak_rms_db(wave: np.ndarray) -> float:
    window = round(0.025 * SR)
    energy = np.concatenate([[0.0], np.cumsum(wave**2)])
    return 10 * np.log10(np.max(energy[window:] - energy[:-window]) / window)


def test_long_corpus_events_match_the_audio_and_generation_resumes(tmp_path):
    spec = LongSceneSpec(5, seed=8, min_seconds=12.0, max_seconds=30.0, events_per_minute=12.0)
    out = generate_long_corpus(spec, tmp_path / "long", workers=2)
    records = read_manifest(out / "test.jsonl")
    assert [record.id for record in records] == [long_recording_id(spec, index) for index in range(5)]
    for index, record in enumerate(records):
        example = long_example(spec, index)
        recording = example.recording
        audio, sample_rate = sf.read(record.audio, dtype="float64")
        assert sample_rate == SR and sf.info(record.audio).subtype == "PCM_16"
        assert len(audio) == round(recording.seconds * SR) and record.duration == recording.seconds
        assert record.source == "mint-synth-long" and record.split == "test"
        assert record.events == example.events and record.captions == example.captions
        assert record.qa == example.qa and record.labels == example.labels
        silence = np.ones(len(audio), dtype=bool)
        for event in record.events:
            start, stop = round(event.onset * SR), round(event.offset * SR)
            silence[start - MS_MARGIN : stop + MS_MARGIN] = False
        # Between events, only background at its level: snr_db below a soft event (measured within
        # 0.25 dB over 40 recordings of 20-40 s, brown noise included).
        background_rms = 10 ** ((SOFT_DBFS - recording.snr_db) / 20)
        assert 20 * np.log10(np.sqrt(np.mean(audio[silence] ** 2)) / background_rms) == pytest.approx(
            0, abs=1.0
        )
        background = np.concatenate(list(iter_long_audio(dataclasses.replace(recording, events=()), SR)))
        residual = audio - background
        assert np.max(np.abs(residual[silence])) <= LSB + 1e-9
        for event in record.events:
            start, stop = round(event.onset * SR), round(event.offset * SR)
            active = np.flatnonzero(np.abs(residual[start:stop]) > 4 * LSB)
            assert active.size and active[0] <= 0.02 * SR and active[-1] >= (stop - start) - 0.2 * SR
            assert _peak_rms_db(audio[start:stop]) > 20 * np.log10(background_rms) + 6.0
    assert not list(out.rglob("*.part"))

    before = _snapshot(out)
    generate_long_corpus(spec, out, workers=2)
    assert _snapshot(out) == before

    lost = Path(records[1].audio)
    lost.unlink()
    truncated = Path(records[3].audio)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    generate_long_corpus(spec, out, workers=1)
    after = _snapshot(out)
    assert {name for name in after if after[name] != before.get(name)} == {
        os.path.join("audio", lost.name),
        os.path.join("audio", truncated.name),
    }
    assert sf.info(str(truncated)).frames == round(long_example(spec, 3).recording.seconds * SR)


def test_long_corpus_refuses_a_folder_made_otherwise(tmp_path):
    spec = LongSceneSpec(1, seed=0, min_seconds=5.0, max_seconds=6.0)
    generate_long_corpus(spec, tmp_path / "a", workers=1)
    with pytest.raises(DataError, match="different spec"):
        generate_long_corpus(dataclasses.replace(spec, seed=1), tmp_path / "a", workers=1)
    with pytest.raises(DataError, match="different spec"):
        generate_long_corpus(spec, tmp_path / "a", workers=1, split="val")
    generate_corpus(SynthSpec(num_clips=1, clip_seconds=3.0), tmp_path / "b", workers=1, splits={"test": 1.0})
    with pytest.raises(DataError, match="different spec"):
        generate_long_corpus(spec, tmp_path / "b", workers=1)
    with pytest.raises(ConfigError, match="split name"):
        generate_long_corpus(spec, tmp_path / "c", split="../x")


def test_cli_synth_long(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "synth-long", "--out", str(out), "--recordings", "2", "--min-seconds", "5"]
    argv += ["--max-seconds", "7", "--seed", "3", "--workers", "1", "--kinds", "siren,bell"]
    assert main(argv) == 0
    records = read_manifest(out / "test.jsonl")
    spec = LongSceneSpec(2, seed=3, min_seconds=5.0, max_seconds=7.0, event_kinds=["siren", "bell"])
    assert [record.events for record in records] == [long_example(spec, index).events for index in range(2)]
    assert all(isinstance(event, TimedEvent) for record in records for event in record.events)
    assert "2 long recordings" in capsys.readouterr().out
    assert (
        main(
            ["data", "synth-long", "--out", str(tmp_path / "bad"), "--recordings", "1", "--min-seconds", "2"]
        )
        == 2
    )
    assert "long.min_seconds" in capsys.readouterr().err
