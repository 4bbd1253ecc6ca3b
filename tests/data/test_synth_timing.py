"""Time in the synthetic corpus: every record's events (onset, offset) agree with its scene and its
audio; `SynthSpec.timing` adds timed captions and questions answered to 0.1 s; times are formatted and
parsed back."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import soundfile as sf

from mint.data.manifest import TimedEvent, read_manifest
from mint.data.synth.corpus import SynthSpec, generate_corpus, synth_example
from mint.data.synth.events import EVENT_KINDS, Event
from mint.data.synth.scenes import PEAK_LIMIT, PlacedEvent, Scene, render_scene, sample_scene
from mint.data.synth.text import (
    captions,
    event_clause,
    format_clock,
    format_seconds,
    parse_seconds,
    question_answers,
    timed_events,
)
from mint.errors import ConfigError, DataError

SR = 16000
LSB = 1.0 / 32768
MS_MARGIN = round(0.0005 * SR) + 1  # samples: half a millisecond of rounding, plus the sample's own


def _hand_scene() -> Scene:
    siren = Event("siren", "loud", 1.0, -20.0, duration="long", pitch_hz=900.0)
    knock = Event("knock", "soft", 0.5, -32.0, repetitions=3)
    tone = Event("tone", "soft", 0.3, -32.0, duration="short", pitch="high", pitch_hz=1000.0)
    placed = (PlacedEvent(siren, 0.2), PlacedEvent(knock, 1.5), PlacedEvent(tone, 1.84))
    return Scene(placed, "pink", 20.0, 4.0, seed=1)


def test_hand_worked_timed_caption_and_events():
    texts = captions(_hand_scene(), timing=True)
    assert texts[:4] == captions(_hand_scene())
    # siren 0.2-1.2, knock 1.5-2.0, tone 1.84-2.14 (to 0.1 s: 1.8-2.1)
    assert texts[4] == (
        "a siren from 0.2 to 1.2 seconds, then a knock from 1.5 to 2.0 seconds, "
        "then a tone from 1.8 to 2.1 seconds"
    )
    assert timed_events(_hand_scene().events) == [
        TimedEvent("siren", 0.2, 1.2, "a long loud siren"),
        TimedEvent("knock", 1.5, 2.0, "three soft knocks"),
        TimedEvent("tone", 1.84, 2.14, "a brief soft high-pitched tone"),
    ]


def test_hand_worked_timed_answers():
    pairs = question_answers(_hand_scene(), np.random.default_rng(0), list(EVENT_KINDS), timing=True)
    qa = {pair.question: pair.answer for pair in pairs}
    expected_times = {"siren": ("0.2", "1.2"), "knock": ("1.5", "2.0"), "tone": ("1.8", "2.1")}
    for kind, (start, end) in expected_times.items():
        asked = [q for q in (f"when does the {kind} start?", f"when does the {kind} end?") if q in qa]
        assert len(asked) == 1, asked  # one of the two per event, drawn
        assert qa[asked[0]] == f"at {start if asked[0].endswith('start?') else end} seconds"
    assert qa["what happens after the siren?"] == "someone knocks three times softly"
    assert qa["what happens after the knock?"] == "a steady tone sounds briefly and softly at a high pitch"
    assert "what happens after the tone?" not in qa
    # Timing questions come last: without timing the pairs are the same, in the same order.
    assert pairs[: len(pairs) - 5] == question_answers(
        _hand_scene(), np.random.default_rng(0), list(EVENT_KINDS)
    )


def _scenes(count: int, seed: int) -> list[Scene]:
    return [sample_scene(np.random.default_rng([seed, index])) for index in range(count)]


def test_timed_answers_are_the_scene_times_to_a_tenth_of_a_second():
    starts = ends = 0
    for index, scene in enumerate(_scenes(80, seed=7)):
        qa = {
            pair.question: pair.answer
            for pair in question_answers(scene, np.random.default_rng(index), list(EVENT_KINDS), timing=True)
        }
        for position, placed in enumerate(scene.events):
            kind = placed.event.kind
            start, end = f"when does the {kind} start?", f"when does the {kind} end?"
            assert (start in qa) != (end in qa)
            if start in qa:
                starts += 1
                assert re.fullmatch(r"at \d+\.\d seconds", qa[start])
                assert abs(parse_seconds(qa[start]) - placed.onset) <= 0.05 + 1e-9
            else:
                ends += 1
                assert abs(parse_seconds(qa[end]) - (placed.onset + placed.event.seconds)) <= 0.05 + 1e-9
            after = f"what happens after the {kind}?"
            if position + 1 < len(scene.events):
                assert qa[after] == event_clause(scene.events[position + 1].event)
            else:
                assert after not in qa
        timed = captions(scene, timing=True)[4]
        spans = [tuple(map(float, m)) for m in re.findall(r"from (\d+\.\d) to (\d+\.\d) seconds", timed)]
        assert len(spans) == len(scene.events)
        for (onset, offset), placed in zip(spans, scene.events, strict=True):
            assert abs(onset - placed.onset) <= 0.05 + 1e-9
            assert abs(offset - placed.offset) <= 0.05 + 1e-9
    assert starts > 20 and ends > 20  # both forms are drawn


@pytest.mark.parametrize(
    ("answer", "seconds"),
    [
        ("at 12.3 seconds", 12.3),
        ("12.3 s", 12.3),
        ("12.3s", 12.3),
        ("at 0.4 seconds", 0.4),
        ("1 second", 1.0),
        ("1:02.5", 62.5),
        ("at 0:47", 47.0),
        ("1:02:03", 3723.0),
        ("2 min 3 s", 123.0),
        ("1 minute and 2.5 seconds", 62.5),
        ("1m2s", 62.0),
        ("about 3 minutes", 180.0),
        ("from 0.4 to 1.6 seconds", 0.4),
        ("At 5 Seconds.", 5.0),
        ("12.3", 12.3),
        ("at 7", 7.0),
        ("it starts at 3 s and ends at 4 s", 3.0),
    ],
)
def test_parse_seconds_reads_times(answer, seconds):
    assert parse_seconds(answer) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "answer", ["", "no", "two", "siren", "the 3 sounds", "version 1.2 of it", "12:75", "three knocks"]
)
def test_parse_seconds_finds_no_time(answer):
    assert parse_seconds(answer) is None


def test_time_formats():
    assert format_seconds(0.4) == "0.4 seconds"
    assert format_seconds(12.34) == "12.3 seconds"
    assert format_seconds(1.96) == "2.0 seconds"
    assert format_seconds(-0.01) == "0.0 seconds"
    assert format_clock(47.3) == "0:47"
    assert format_clock(72.0) == "1:12"
    assert format_clock(59.6) == "1:00"
    assert format_clock(3723.0) == "1:02:03"
    for seconds in (0.0, 0.44, 61.25, 599.9, 3599.5):
        assert parse_seconds(f"at {format_seconds(seconds)}") == pytest.approx(round(seconds, 1))
        assert abs(parse_seconds(format_clock(seconds)) - seconds) <= 0.5


def test_timing_is_opt_in_and_leaves_audio_and_other_text_alone():
    plain = SynthSpec(num_clips=6, seed=2, clip_seconds=3.0)
    timed = dataclasses.replace(plain, timing=True)
    for index in range(6):
        a, b = synth_example(plain, index), synth_example(timed, index)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert b.captions[:4] == a.captions and len(b.captions) == 5
        assert b.qa[: len(a.qa)] == a.qa and len(b.qa) > len(a.qa)
        assert not any(q.question.startswith("when does") for q in a.qa)
        assert a.events == b.events
    with pytest.raises(ConfigError, match=r"synth\.timing"):
        SynthSpec(num_clips=2, timing="yes")


def _peak_rms_db(wave: np.ndarray) -> float:
    """Level of the loudest 25 ms, the measure event levels are defined by."""
    window = round(0.025 * SR)
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    return 10 * np.log10(np.max(energy[window:] - energy[:-window]) / window)


def test_corpus_events_match_the_scene_and_the_audio(tmp_path):
    spec = SynthSpec(num_clips=12, seed=5, clip_seconds=3.0, timing=True)
    out = generate_corpus(spec, tmp_path / "corpus", workers=1, splits={"test": 1.0})
    records = read_manifest(out / "test.jsonl")
    assert len(records) == 12
    checked = 0
    for index, record in enumerate(records):
        scene = synth_example(spec, index).scene
        # The manifest's events, recomputed here from the scene: kind, onset and onset + length to 1 ms.
        assert [(e.label, e.onset, e.offset) for e in record.events] == [
            (p.event.kind, round(p.onset, 3), round(p.onset + p.event.seconds, 3)) for p in scene.events
        ]
        for event in record.events:
            assert event.caption and event.caption in record.captions[0]  # the detailed chain of phrases
        audio, sample_rate = sf.read(record.audio, dtype="float64")
        assert sample_rate == SR
        # Events alone: the clip less its background (stream 0 of the scene's seed, whatever the events).
        background = render_scene(dataclasses.replace(scene, events=()), SR).astype(np.float64)
        if np.max(np.abs(render_scene(scene, SR))) >= PEAK_LIMIT - 1e-6:
            continue  # a peak-limited clip is rescaled as a whole; its background is no longer the same
        residual = audio - background
        inside = np.zeros(len(audio), dtype=bool)
        for event in record.events:
            start, stop = round(event.onset * SR), round(event.offset * SR)
            # The manifest's times are to the millisecond: the true span may start or end 0.5 ms away.
            inside[max(start - MS_MARGIN, 0) : stop + MS_MARGIN] = True
            active = np.flatnonzero(np.abs(residual[start:stop]) > 4 * LSB)
            assert active.size, event
            # Sound from the first 20 ms of the span to within 0.2 s of its end (strikes, ticks and bird
            # syllables leave up to one period of silence at the end).
            assert active[0] <= 0.02 * SR and active[-1] >= (stop - start) - 0.2 * SR, event
            # Loud enough to hear over the background: the softest event (-33.5 dBFS) against the loudest
            # background (10 dB below -32 dBFS) is 8.5 dB above it.
            assert _peak_rms_db(audio[start:stop]) > 10 * np.log10(np.mean(background**2)) + 6.0
        # Outside every span (before the first onset included) there is background and nothing else.
        assert np.max(np.abs(residual[~inside])) <= LSB
        checked += 1
    assert checked >= 10


def test_spec_file_leaves_out_timing_when_off_so_older_folders_still_match(tmp_path):
    spec = SynthSpec(num_clips=2, seed=0, clip_seconds=3.0)
    generate_corpus(spec, tmp_path, workers=1, splits={"test": 1.0})
    recorded = json.loads((tmp_path / "synth_spec.json").read_text())
    assert "timing" not in recorded["spec"]
    with pytest.raises(DataError, match="different spec"):
        generate_corpus(dataclasses.replace(spec, timing=True), tmp_path, workers=1, splits={"test": 1.0})
    generate_corpus(spec, tmp_path, workers=1, splits={"test": 1.0})
