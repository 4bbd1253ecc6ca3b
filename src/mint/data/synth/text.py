"""Text for a scene: paraphrased captions, labels and question-answer pairs, all read off the scene.

Everything said is audible: kinds, order, overlap, loudness (12 dB classes), duration class,
pitch class, number of strikes, the colour of the background noise, and a spoken word with who says it.
Answers are short and canonical (number words, event names, yes/no, loud/soft, short/long, high/low,
the word itself) so they can be scored by exact match.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from mint.data.manifest import QAPair
from mint.data.synth.events import SPEECH, Event
from mint.data.synth.scenes import Scene

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
PITCH_RATIO_FOR_QUESTIONS = 2.0
"""Pitch is only compared across events at least an octave apart, where the answer is unambiguous."""

_PLURALS = {"knock": "knocks", "beep": "beeps"}
# The questions whose answer is the spoken word (the demo's spoken-word accuracy).
WORD_QUESTIONS = ("what word is spoken?", "what does the voice say?")
SPEAKING_QUESTIONS = ("is someone speaking?", "can you hear a voice?")

# (subject, verb) of the clause describing each kind, e.g. "a siren" + "wails".
_CLAUSES = {
    "tone": ("a steady tone", "sounds"),
    "rising chirp": ("a rising chirp", "sweeps up"),
    "falling chirp": ("a falling chirp", "sweeps down"),
    "noise burst": ("a burst of noise", "hisses"),
    "click train": ("a train of clicks", "ticks"),
    "siren": ("a siren", "wails"),
    "engine hum": ("an engine", "hums"),
    "bird chirp": ("a bird", "chirps"),
    "knock": ("someone", "knocks"),
    "bell": ("a bell", "rings"),
    "beep": ("a device", "beeps"),
}
_ADVERBS = {"loud": "loudly", "soft": "softly"}


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(event: Event, detailed: bool) -> str:
    """'a brief loud high-pitched tone', 'three soft knocks'; `detailed=False` keeps only loudness."""
    if event.kind == SPEECH:
        speaker = event.voice.speaker.removeprefix("a ") if detailed else "voice"
        return f"a {event.loudness} {speaker}'s voice saying '{event.word}'"
    words = []
    if detailed and event.duration is not None:
        words.append("brief" if event.duration == "short" else "long")
    words.append(event.loudness)
    if detailed and event.pitch is not None:
        words.append(f"{event.pitch}-pitched")
    if event.repetitions > 1:
        return " ".join([NUMBER_WORDS[event.repetitions], *words, _PLURALS.get(event.kind, event.kind)])
    return with_article(" ".join([*words, event.kind]))


def _clause(event: Event) -> str:
    """'a siren wails loudly for a long time', 'someone knocks three times softly'."""
    if event.kind == SPEECH:
        return f"{event.voice.speaker} says '{event.word}' {_ADVERBS[event.loudness]}"
    subject, verb = _CLAUSES[event.kind]
    parts = [subject, verb]
    if event.repetitions > 1:
        parts.append(f"{NUMBER_WORDS[event.repetitions]} times")
    adverb = _ADVERBS[event.loudness]
    if event.duration == "short":
        parts.append(f"briefly and {adverb}")
    elif event.duration == "long":
        parts.append(f"{adverb} for a long time")
    else:
        parts.append(adverb)
    if event.pitch is not None:
        parts.append(f"at a {event.pitch} pitch")
    return " ".join(parts)


def _chain(scene: Scene, phrase: Callable[[Event], str], sequential: str, overlapping: str) -> str:
    text = phrase(scene.events[0].event)
    for index in range(1, len(scene.events)):
        joiner = overlapping if scene.overlaps_previous(index) else sequential
        text += joiner + phrase(scene.events[index].event)
    return text


def _clause_caption(scene: Scene) -> str:
    clauses = [_clause(placed.event) for placed in scene.events]
    if len(clauses) == 1:
        return clauses[0]
    text = "first " + clauses[0]
    for index in range(1, len(clauses)):
        if scene.overlaps_previous(index):
            joiner = ", and while it continues "
        elif index == len(clauses) - 1 and index > 1:
            joiner = ", and finally "
        else:
            joiner = ", then "
        text += joiner + clauses[index]
    return text


def _bare_phrase(event: Event) -> str:
    return f"someone saying '{event.word}'" if event.kind == SPEECH else with_article(event.kind)


def captions(scene: Scene) -> list[str]:
    """Four paraphrases naming the events in order; every one but the clause form uses the kind names."""
    count = len(scene.events)
    detailed = _chain(scene, partial(_noun_phrase, detailed=True), " followed by ", " overlapping with ")
    summary = _chain(scene, partial(_noun_phrase, detailed=False), ", then ", ", overlapping with ")
    counted = f"{NUMBER_WORDS[count]} sounds: {summary}" if count > 1 else f"a single sound: {summary}"
    bare = _chain(scene, _bare_phrase, " and then ", " together with ")
    return [
        detailed,
        _clause_caption(scene),
        f"{bare} over {scene.background} noise",
        counted,
    ]


def event_description(scene: Scene) -> str:
    """Everything the captions can say about the scene, in one canonical text: each event with all its
    attributes, in order, whether it overlaps the one before, and the background. Two scenes with the same
    description are the same content to any caption (stage 1 never makes one the other's negative)."""
    detailed = _chain(scene, partial(_noun_phrase, detailed=True), " followed by ", " overlapping with ")
    return f"{detailed} over {scene.background} noise"


def labels(scene: Scene) -> list[str]:
    """Event kinds in order of first appearance, each once."""
    return list(dict.fromkeys(scene.kinds))


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _order_questions(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    kinds = scene.kinds
    if len(kinds) == 1:
        return [QAPair(_pick(rng, ["what is the sound?", "what sound can be heard?"]), kinds[0])]
    pairs = [
        QAPair(_pick(rng, ["what comes first?", "which sound is heard first?"]), kinds[0]),
        QAPair(_pick(rng, ["what comes last?", "which sound is heard last?"]), kinds[-1]),
    ]
    index = int(rng.integers(len(kinds) - 1))
    pairs.append(QAPair(f"what comes right after the {kinds[index]}?", kinds[index + 1]))
    return pairs


def _loudness_questions(scene: Scene) -> list[QAPair]:
    loud = [placed.event.kind for placed in scene.events if placed.event.loudness == "loud"]
    soft = [placed.event.kind for placed in scene.events if placed.event.loudness == "soft"]
    if len(scene.events) == 2 and len(loud) == 1:
        first, second = scene.kinds
        return [QAPair(f"which is louder, the {first} or the {second}?", loud[0])]
    pairs = []
    if len(scene.events) > 2 and len(loud) == 1:
        pairs.append(QAPair("which sound is the loudest?", loud[0]))
    if len(scene.events) > 2 and len(soft) == 1:
        pairs.append(QAPair("which sound is the quietest?", soft[0]))
    return pairs


def _pitch_question(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    pitched = [placed.event for placed in scene.events if placed.event.pitch_hz is not None]
    candidates = [
        (a, b)
        for i, a in enumerate(pitched)
        for b in pitched[i + 1 :]
        if max(a.pitch_hz, b.pitch_hz) >= PITCH_RATIO_FOR_QUESTIONS * min(a.pitch_hz, b.pitch_hz)
    ]
    if not candidates:
        return []
    first, second = candidates[int(rng.integers(len(candidates)))]
    if rng.random() < 0.5:
        first, second = second, first
    higher = first if first.pitch_hz > second.pitch_hz else second
    return [QAPair(f"which is higher in pitch, the {first.kind} or the {second.kind}?", higher.kind)]


def _presence_questions(scene: Scene, rng: np.random.Generator, vocabulary: list[str]) -> list[QAPair]:
    """One 'yes' and one 'no' question per scene (or neither), so the answers are balanced exactly."""
    absent = [kind for kind in vocabulary if kind not in scene.kinds]
    sounds = [kind for kind in scene.kinds if kind != SPEECH]  # a voice has questions of its own
    if not absent or not sounds:
        return []
    template = _pick(rng, ["is there {}?", "can you hear {}?"])
    present = sounds[int(rng.integers(len(sounds)))]
    missing = absent[int(rng.integers(len(absent)))]
    pairs = [
        QAPair(template.format(with_article(present)), "yes"),
        QAPair(template.format(with_article(missing)), "no"),
    ]
    if rng.random() < 0.5:
        pairs.reverse()
    return pairs


def _attribute_questions(event: Event) -> list[QAPair]:
    pairs = [QAPair(f"is the {event.kind} loud or soft?", event.loudness)]
    if event.duration is not None:
        pairs.append(QAPair(f"is the {event.kind} short or long?", event.duration))
    if event.pitch is not None:
        pairs.append(QAPair(f"is the {event.kind} high or low in pitch?", event.pitch))
    if event.repetitions > 1:
        pairs.append(
            QAPair(
                f"how many {_PLURALS.get(event.kind, event.kind)} are there?", NUMBER_WORDS[event.repetitions]
            )
        )
    return pairs


def _speech_questions(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    speech = scene.speech
    if speech is None:
        return [QAPair(_pick(rng, list(SPEAKING_QUESTIONS)), "no")]
    return [
        QAPair(_pick(rng, list(SPEAKING_QUESTIONS)), "yes"),
        QAPair(_pick(rng, list(WORD_QUESTIONS)), speech.word),
        QAPair("who is speaking, a man or a woman?", speech.voice.speaker.removeprefix("a ")),
    ]


def question_answers(
    scene: Scene, rng: np.random.Generator, vocabulary: list[str], speech: bool = False
) -> list[QAPair]:
    """QA pairs about count, order, loudness, pitch, presence (absent kinds drawn from `vocabulary`),
    each event's attributes and the background; with `speech` (a corpus that has spoken words) also
    whether someone speaks, the word and who says it."""
    count = len(scene.events)
    pairs = [
        QAPair(
            _pick(rng, ["how many sounds are there?", "how many different sounds are heard?"]),
            NUMBER_WORDS[count],
        )
    ]
    pairs += _order_questions(scene, rng)
    pairs += _loudness_questions(scene)
    pairs += _pitch_question(scene, rng)
    pairs += _presence_questions(scene, rng, vocabulary)
    for placed in scene.events:
        pairs += _attribute_questions(placed.event)
    pairs.append(QAPair("what kind of background noise is there?", f"{scene.background} noise"))
    if speech:
        pairs += _speech_questions(scene, rng)
    return pairs
