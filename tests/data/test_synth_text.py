import re

import numpy as np
import pytest

from mint.data.synth.events import EVENT_KINDS, Event
from mint.data.synth.scenes import PlacedEvent, Scene, sample_scene
from mint.data.synth.text import captions, labels, question_answers

WORD_TO_NUMBER = {"one": 1, "two": 2, "three": 3, "four": 4}


def _scenes(count: int, seed: int = 0, **kwargs) -> list[Scene]:
    return [sample_scene(np.random.default_rng([seed, index]), **kwargs) for index in range(count)]


def _qa(scene: Scene, seed: int = 0) -> dict[str, str]:
    return {
        pair.question: pair.answer
        for pair in question_answers(scene, np.random.default_rng(seed), list(EVENT_KINDS))
    }


def _hand_scene() -> Scene:
    siren = Event("siren", "loud", 1.0, -20.0, duration="long", pitch_hz=900.0)
    knock = Event("knock", "soft", 0.5, -32.0, repetitions=3)
    tone = Event("tone", "soft", 0.3, -32.0, duration="short", pitch="high", pitch_hz=1000.0)
    placed = (PlacedEvent(siren, 0.2), PlacedEvent(knock, 1.5), PlacedEvent(tone, 1.8))
    return Scene(placed, "pink", 20.0, 4.0, seed=1)


def test_hand_worked_scene_captions():
    assert captions(_hand_scene()) == [
        "a long loud siren followed by three soft knocks overlapping with a brief soft high-pitched tone",
        "first a siren wails loudly for a long time, then someone knocks three times softly, "
        "and while it continues a steady tone sounds briefly and softly at a high pitch",
        "a siren and then a knock together with a tone over pink noise",
        "three sounds: a loud siren, then three soft knocks, overlapping with a soft tone",
    ]
    assert labels(_hand_scene()) == ["siren", "knock", "tone"]


def test_hand_worked_scene_answers():
    qa = _qa(_hand_scene())
    assert qa["what comes right after the siren?"] == "knock"
    assert qa["which sound is the loudest?"] == "siren"
    assert qa["how many knocks are there?"] == "three"
    assert qa["is the tone high or low in pitch?"] == "high"
    assert qa["is the siren short or long?"] == "long"
    assert qa["what kind of background noise is there?"] == "pink noise"
    # Siren (900 Hz) and tone (1000 Hz) are not an octave apart, and knocks are unpitched.
    assert not any("higher in pitch" in question for question in qa)
    assert "which sound is the quietest?" not in qa


def test_captions_are_distinct_paraphrases_naming_the_labels_in_order():
    for scene in _scenes(40):
        texts = captions(scene)
        assert len(texts) >= 4
        assert len(set(texts)) == len(texts)
        assert labels(scene) == scene.kinds
        for text in (texts[0], texts[2], texts[3]):
            positions = [text.find(label) for label in labels(scene)]
            assert all(position >= 0 for position in positions), (text, labels(scene))
            assert positions == sorted(positions)


def _number(answer: str) -> int:
    return WORD_TO_NUMBER[answer]


def test_count_order_and_attribute_answers_match_the_scene():
    for index, scene in enumerate(_scenes(60, seed=1)):
        qa = _qa(scene, index)
        count_answers = [
            answer
            for question, answer in qa.items()
            if question.startswith("how many") and "sounds" in question
        ]
        assert [_number(answer) for answer in count_answers] == [len(scene.events)]
        first_by_onset = min(scene.events, key=lambda placed: placed.onset).event.kind
        if len(scene.events) > 1:
            first = [answer for question, answer in qa.items() if "first" in question]
            assert first == [first_by_onset]
        else:
            assert first_by_onset in qa.values()
        for placed in scene.events:
            event = placed.event
            assert qa[f"is the {event.kind} loud or soft?"] == event.loudness
            if event.duration is not None:
                assert qa[f"is the {event.kind} short or long?"] == event.duration


def test_comparisons_name_the_louder_and_the_higher_event():
    seen_loud = seen_pitch = 0
    for index, scene in enumerate(_scenes(80, seed=2, num_events=2)):
        by_kind = {placed.event.kind: placed.event for placed in scene.events}
        for question, answer in _qa(scene, index).items():
            match = re.fullmatch(r"which is (louder|higher in pitch), the (.+) or the (.+)\?", question)
            if not match:
                continue
            a, b = by_kind[match.group(2)], by_kind[match.group(3)]
            if match.group(1) == "louder":
                seen_loud += 1
                assert {a.loudness, b.loudness} == {"loud", "soft"}
                assert by_kind[answer].loudness == "loud"
            else:
                seen_pitch += 1
                assert max(a.pitch_hz, b.pitch_hz) >= 2 * min(a.pitch_hz, b.pitch_hz)
                assert by_kind[answer].pitch_hz == max(a.pitch_hz, b.pitch_hz)
    assert seen_loud > 10 and seen_pitch > 5


def test_presence_questions_are_correct_and_balanced():
    answers = []
    for index, scene in enumerate(_scenes(50, seed=3)):
        for question, answer in _qa(scene, index).items():
            match = re.fullmatch(r"(?:is there|can you hear) an? (.+)\?", question)
            if match:
                assert answer == ("yes" if match.group(1) in scene.kinds else "no")
                answers.append(answer)
    assert len(answers) == 100
    assert answers.count("yes") == answers.count("no")


def test_answers_are_short_canonical_words():
    allowed = (
        set(EVENT_KINDS) | set(WORD_TO_NUMBER) | {"yes", "no", "loud", "soft", "short", "long", "high", "low"}
    )
    allowed |= {f"{colour} noise" for colour in ("white", "pink", "brown")}
    for index, scene in enumerate(_scenes(40, seed=4)):
        for answer in _qa(scene, index).values():
            assert answer in allowed


@pytest.mark.parametrize("vocabulary", [["siren", "bell"], ["siren", "bell", "knock"]])
def test_presence_needs_an_absent_kind(vocabulary):
    scene = sample_scene(np.random.default_rng(0), num_events=2, event_kinds=vocabulary)
    pairs = question_answers(scene, np.random.default_rng(0), vocabulary)
    presence = [pair.answer for pair in pairs if pair.question.startswith(("is there", "can you hear"))]
    assert presence.count("yes") == presence.count("no") == (0 if len(vocabulary) == 2 else 1)
