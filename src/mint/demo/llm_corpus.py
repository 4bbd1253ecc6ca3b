"""What the demo's stand-in LLM reads: the training corpus's texts, short documents in which a clip's
caption comes before an instruction about the same clip and its answer, and documents that state a
question's answer before the question.

A pretrained LLM has read plenty of text whose later sentences depend on earlier ones, which is what
lets a soft prompt stand in for a description of the audio. The stand-in gets the same habit from
documents `<caption> <instruction> <response>`: one of the clip's captions, then a stage-2 instruction
about that clip (a caption request, one of its questions, a tagging request) and its answer. In stage 2
the soft prompt takes the caption's place. Only training clips are read; held-out text never is.

Captions alone did not teach a two-layer stand-in to read yes/no and attribute answers off its context
(given a clip's true caption as text, it answered "is the knock loud or soft?" and "can you hear a
siren?" at chance). Answer documents `<answer>. <instruction> <answer>` teach it to take an answer its
context states, as a pretrained LLM does; the instruction-aware queries, which see the question, can then
state the answer in the soft prompt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mint.data.instructions import TEMPLATES
from mint.data.manifest import ManifestRecord


def corpus_texts(train: Sequence[ManifestRecord]) -> list[str]:
    """Every text the models meet: captions, labels, questions with their answers, instructions."""
    texts: list[str] = []
    for record in train:
        texts += record.captions + record.labels
        texts += [f"{pair.question} {pair.answer}" for pair in record.qa]
    for templates in TEMPLATES.values():
        texts += [template.replace("{question}", "").replace("{options}", "") for template in templates]
    return texts


def context_documents(train: Sequence[ManifestRecord], seed: int) -> list[str]:
    """Per training clip: one document per question, one per caption and one tagging document, each
    opened by a caption of the clip drawn with `random.Random(seed)`."""
    rng = random.Random(seed)
    documents: list[str] = []
    for record in train:
        if not record.captions:
            continue
        for pair in record.qa:
            question = rng.choice(TEMPLATES["qa"]).format(question=pair.question)
            documents.append(f"{rng.choice(record.captions)} {question} {pair.answer}")
        for caption in record.captions:
            documents.append(f"{rng.choice(record.captions)} {rng.choice(TEMPLATES['caption'])} {caption}")
        if record.labels:
            tagging = rng.choice(TEMPLATES["tagging"])
            documents.append(f"{rng.choice(record.captions)} {tagging} {', '.join(record.labels)}")
    return documents


def answer_documents(train: Sequence[ManifestRecord], seed: int) -> list[str]:
    """Per training question: its answer stated, then the question in a QA template drawn with
    `random.Random(seed)`, then the answer."""
    rng = random.Random(seed)
    return [
        f"{pair.answer}. {rng.choice(TEMPLATES['qa']).format(question=pair.question)} {pair.answer}"
        for record in train
        for pair in record.qa
    ]
