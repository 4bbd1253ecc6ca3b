"""Text for a scene: paraphrased captions, labels and question-answer pairs, all read off the scene.

Everything said is audible: kinds, order, overlap, loudness (12 dB classes), duration class,
pitch class, number of strikes, the colour of the background noise, and a spoken word with who says it.
Answers are short and canonical (number words, event names, yes/no, loud/soft, short/long, high/low,
the word itself) so they can be scored by exact match.

With `timing` (`SynthSpec.timing`), captions and questions also say when each event happens, to 0.1 s:
"a siren from 0.4 to 1.6 seconds, ...", "when does the siren start?" -> "at 0.4 seconds". Such answers
are scored by the error of the time they give (`parse_seconds`), not by exact match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from mint.data.manifest import QAPair, TimedEvent
from mint.data.synth.events import SPEECH, Event
from mint.data.synth.scenes import PlacedEvent, Scene

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


def _tenths(seconds: float) -> str:
    # Adding 0.0 turns a rounded -0.0 into 0.0, so a time just before zero never reads "-0.0".
    return f"{round(seconds, 1) + 0.0:.1f}"


def format_seconds(seconds: float) -> str:
    """'0.4 seconds': a time to 0.1 s, the form every timed caption and answer uses."""
    return f"{_tenths(seconds)} seconds"


def format_clock(seconds: float) -> str:
    """'0:47', '12:05', '1:02:03': a time to the nearest second, as a clock shows it."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_NUMBER = r"\d+(?:\.\d+)?"
# h:mm:ss or m:ss, with optional decimals on the seconds; not part of a longer run of digits and colons.
_CLOCK = re.compile(r"(?<![\d.:])(\d+):([0-5]\d)(?::([0-5]\d))?(\.\d+)?(?![\d:])")
# "1 hour 2 minutes 3.5 seconds", "2 min and 3 s", "1m2s", "12.3 s"; each part optional, in that order.
_UNITS = re.compile(
    rf"(?<![\d.])(?:(?P<h>{_NUMBER})\s*(?:hours?|hrs?|h)(?![a-z])[\s,]*(?:and\s+)?)?"
    rf"(?:(?P<m>{_NUMBER})\s*(?:minutes?|mins?|m)(?![a-z])[\s,]*(?:and\s+)?)?"
    rf"(?:(?P<s>{_NUMBER})\s*(?:seconds?|secs?|s)(?![a-z]))?"
)
# "from 0.4 to 1.6 seconds": the range's first number carries the unit named after the second.
_RANGE = re.compile(rf"(?<![\d.])({_NUMBER})\s*(?:to|and|-|–)\s*{_NUMBER}\s*(?:seconds?|secs?|s)(?![a-z])")
_BARE = re.compile(rf"^(?:at|after|around|about)?\s*({_NUMBER})\s*\.?$")


def parse_seconds(answer: str) -> float | None:
    """The first time an answer gives, in seconds: 'at 12.3 seconds', '12.3 s', '1:02.5', '2 min 3 s',
    the start of 'from 0.4 to 1.6 seconds', or an answer that is only a number ('12.3', 'at 12.3'), read
    as seconds. None when it gives no time.

    Used to score timed answers by the error of the time, so a model that says "at about 12.3 s" is
    as right as one that copies the canonical "at 12.3 seconds"."""
    text = answer.lower()
    found: list[tuple[int, float]] = []
    clock = _CLOCK.search(text)
    if clock:
        first, second, third, fraction = clock.groups()
        if third is None:
            hours, minutes, secs = 0, int(first), int(second)
        else:
            hours, minutes, secs = int(first), int(second), int(third)
        found.append((clock.start(), 3600 * hours + 60 * minutes + secs + float(fraction or 0.0)))
    span = _RANGE.search(text)
    if span:
        found.append((span.start(), float(span.group(1))))
    for match in _UNITS.finditer(text):
        # Every part is optional, so the pattern also matches the empty string between the times.
        if any(match.group(part) for part in "hms"):
            parts = [float(match.group(part) or 0.0) for part in "hms"]
            found.append((match.start(), 3600 * parts[0] + 60 * parts[1] + parts[2]))
            break
    if found:
        return min(found)[1]
    bare = _BARE.match(text.strip())
    return float(bare.group(1)) if bare else None


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(event: Event, detailed: bool) -> str:
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


def event_clause(event: Event) -> str:
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
    clauses = [event_clause(placed.event) for placed in scene.events]
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


def _timed_caption(scene: Scene) -> str:
    """'a siren from 0.4 to 1.6 seconds, then a knock from 2.0 to 2.3 seconds'."""
    return ", then ".join(
        f"{_bare_phrase(placed.event)} from {_tenths(placed.onset)} to {format_seconds(placed.offset)}"
        for placed in scene.events
    )


def captions(scene: Scene, timing: bool = False) -> list[str]:
    """Four paraphrases naming the events in order; every one but the clause form uses the kind names.
    With `timing`, a fifth says when each event starts and ends."""
    count = len(scene.events)
    detailed = _chain(scene, partial(noun_phrase, detailed=True), " followed by ", " overlapping with ")
    summary = _chain(scene, partial(noun_phrase, detailed=False), ", then ", ", overlapping with ")
    counted = f"{NUMBER_WORDS[count]} sounds: {summary}" if count > 1 else f"a single sound: {summary}"
    bare = _chain(scene, _bare_phrase, " and then ", " together with ")
    texts = [
        detailed,
        _clause_caption(scene),
        f"{bare} over {scene.background} noise",
        counted,
    ]
    if timing:
        texts.append(_timed_caption(scene))
    return texts


def timed_events(events: Sequence[PlacedEvent]) -> list[TimedEvent]:
    """The manifest's `events`: each event's kind, onset and offset (to the millisecond) and its detailed
    noun phrase ('a loud long high-pitched siren')."""
    return [
        TimedEvent(
            label=placed.event.kind,
            onset=round(placed.onset, 3),
            offset=round(placed.onset + placed.event.seconds, 3),
            caption=noun_phrase(placed.event, detailed=True),
        )
        for placed in events
    ]


def event_description(scene: Scene) -> str:
    """Everything the captions can say about the scene, in one canonical text: each event with all its
    attributes, in order, whether it overlaps the one before, and the background. Two scenes with the same
    description are the same content to any caption (stage 1 never makes one the other's negative)."""
    detailed = _chain(scene, partial(noun_phrase, detailed=True), " followed by ", " overlapping with ")
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


def _timing_questions(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    """Per event, when it starts or when it ends (one of the two, drawn), and what happens after it.
    A scene's kinds are distinct, so "the siren" names one event."""
    pairs = []
    for index, placed in enumerate(scene.events):
        kind = placed.event.kind
        if rng.random() < 0.5:
            pairs.append(QAPair(f"when does the {kind} start?", f"at {format_seconds(placed.onset)}"))
        else:
            pairs.append(QAPair(f"when does the {kind} end?", f"at {format_seconds(placed.offset)}"))
        if index + 1 < len(scene.events):
            pairs.append(
                QAPair(f"what happens after the {kind}?", event_clause(scene.events[index + 1].event))
            )
    return pairs


def question_answers(
    scene: Scene,
    rng: np.random.Generator,
    vocabulary: list[str],
    speech: bool = False,
    timing: bool = False,
) -> list[QAPair]:
    """QA pairs about count, order, loudness, pitch, presence (absent kinds drawn from `vocabulary`),
    each event's attributes and the background; with `speech` (a corpus that has spoken words) also
    whether someone speaks, the word and who says it; with `timing`, when events start or end and what
    follows each. The timed pairs come last and draw last, so the others are the same either way."""
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
    if timing:
        pairs += _timing_questions(scene, rng)
    return pairs
