"""Stage-2 items read as several windows: a few clips of the source, in a drawn order, stand for the
consecutive windows of one longer recording, and the instruction asks about the whole of it.

The model reads a long recording one window at a time and hands the LLM the windows' soft prompts in
order, each with its window-position embedding (`mint.modeling.instruct`). These items teach the LLM to
read such a prompt: to find a sound in any window, to tell the windows apart by position, and to list
what it heard in order. Every question is put through the `qa` templates, so at inference a question is
asked as itself, as single clips' questions are. The forms, and what the clips need for each:

* presence (labels): "is there a siren?" -> yes/no, the sound drawn from the clips' labels or from the
  vocabulary's others with even odds.
* part (a label in exactly one clip): "which part has a siren?" -> "part 2".
* describe part (captions): "what is heard in part 2?" -> one of that clip's captions.
* order (labels in every clip): "which sounds are heard, in order?" -> the labels in order, commas
  between them, a label repeated by the next clip said once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mint.data.sources import Clip
from mint.data.synth.text import with_article

FORMS = ("presence", "part", "describe_part", "order")

QUESTIONS: dict[str, tuple[str, ...]] = {
    "presence": ("is there {sound}?", "can you hear {sound}?"),
    "part": ("which part has {sound}?", "in which part of the recording is there {sound}?"),
    "describe_part": ("what is heard in part {part}?", "describe part {part} of the recording."),
    "order": ("which sounds are heard, in order?", "list the sounds in the order they are heard."),
}


@dataclass(frozen=True)
class SequenceExample:
    form: str  # one of FORMS
    question: str
    answer: str


def part_name(index: int) -> str:
    """How answers and questions name the window `index` (0-based): "part 1", "part 2", ..."""
    return f"part {index + 1}"


def _pick(options: Sequence, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _in_order(parts: Sequence[Clip]) -> list[str]:
    labels: list[str] = []
    for clip in parts:
        for label in clip.labels:
            if not labels or labels[-1] != label:
                labels.append(label)
    return labels


def sequence_forms(parts: Sequence[Clip]) -> list[str]:
    """The forms (in `FORMS` order) the clips `parts` have data for."""
    labels = {label for clip in parts for label in clip.labels}
    forms = []
    if labels:
        forms.append("presence")
    if any(sum(label in clip.labels for clip in parts) == 1 for label in labels):
        forms.append("part")
    if any(clip.captions for clip in parts):
        forms.append("describe_part")
    if all(clip.labels for clip in parts):
        forms.append("order")
    return forms


def sequence_example(
    parts: Sequence[Clip], vocabulary: Sequence[str], rng: np.random.Generator
) -> SequenceExample:
    """A question about the recording the clips `parts` make, in order, and its answer (the form drawn
    among `sequence_forms(parts)`, which the caller makes sure is not empty)."""
    form = _pick(sequence_forms(parts), rng)
    if form == "presence":
        present = sorted({label for clip in parts for label in clip.labels})
        absent = [label for label in vocabulary if label not in present]
        if absent and rng.random() < 0.5:
            sound, answer = _pick(absent, rng), "no"
        else:
            sound, answer = _pick(present, rng), "yes"
        return SequenceExample(form, _pick(QUESTIONS[form], rng).format(sound=with_article(sound)), answer)
    if form == "part":
        unique = sorted(
            {label for clip in parts for label in clip.labels if sum(label in c.labels for c in parts) == 1}
        )
        sound = _pick(unique, rng)
        where = next(index for index, clip in enumerate(parts) if sound in clip.labels)
        question = _pick(QUESTIONS[form], rng).format(sound=with_article(sound))
        return SequenceExample(form, question, part_name(where))
    if form == "describe_part":
        described = [index for index, clip in enumerate(parts) if clip.captions]
        where = _pick(described, rng)
        question = _pick(QUESTIONS[form], rng).format(part=where + 1)
        return SequenceExample(form, question, _pick(parts[where].captions, rng))
    return SequenceExample(form, _pick(QUESTIONS[form], rng), ", ".join(_in_order(parts)))


def draw_parts(count: int, anchor: int, windows: int, rng: np.random.Generator) -> list[int]:
    """Indices of 2 to `windows` distinct clips of `count`, `anchor` among them, in a drawn order."""
    size = min(int(rng.integers(2, windows + 1)), count)
    others = rng.choice(count - 1, size=size - 1, replace=False)
    chosen = [anchor, *(other + (other >= anchor) for other in others.tolist())]
    return [chosen[position] for position in rng.permutation(len(chosen))]
