from __future__ import annotations

from mint.data.instructions import TEMPLATES
from mint.data.manifest import ManifestRecord, QAPair, read_manifest, write_manifest
from mint.demo.llm_corpus import answer_documents, context_documents, corpus_texts

CLIPS = [
    ManifestRecord(
        id="a",
        audio="a.wav",
        captions=["a loud siren", "a siren wails loudly"],
        labels=["siren"],
        qa=[QAPair("how many sounds are there?", "one"), QAPair("is the siren loud or soft?", "loud")],
    ),
    ManifestRecord(
        id="b",
        audio="b.wav",
        captions=["a soft knock then a hum"],
        labels=["knock", "hum"],
        qa=[QAPair("what comes first?", "knock")],
    ),
    ManifestRecord(id="c", audio="c.wav", labels=["bell"]),  # no caption: nothing to open a document with
]


def _manifest(tmp_path):
    path = tmp_path / "train.jsonl"
    write_manifest(CLIPS, path)
    return read_manifest(path)


def _instructions(task: str) -> list[str]:
    return [template.replace("{question}", "") for template in TEMPLATES[task]]


def test_each_document_is_a_caption_then_an_instruction_then_its_answer(tmp_path):
    documents = context_documents(_manifest(tmp_path), seed=0)
    clip_a, clip_b = CLIPS[0], CLIPS[1]
    # One per question, one per caption and one tagging document per captioned clip, in that order.
    assert len(documents) == (2 + 2 + 1) + (1 + 1 + 1)
    for document, pair in zip(documents[:2], clip_a.qa, strict=True):
        assert any(document.startswith(caption + " ") for caption in clip_a.captions)
        assert document.endswith(f"{pair.question} {pair.answer}")
    for document, caption in zip(documents[2:4], clip_a.captions, strict=True):
        assert document.endswith(" " + caption)
        assert any(instruction in document for instruction in _instructions("caption"))
    assert documents[4].endswith(" siren") and any(t in documents[4] for t in _instructions("tagging"))
    assert all(document.startswith(clip_b.captions[0] + " ") for document in documents[5:])
    assert documents[5].endswith("what comes first? knock")
    assert documents[7].endswith(" knock, hum")
    assert not any("bell" in document for document in documents)


def test_documents_are_fixed_by_the_seed(tmp_path):
    train = _manifest(tmp_path)
    assert context_documents(train, seed=3) == context_documents(train, seed=3)
    seeds = {tuple(context_documents(train, seed=seed)) for seed in range(8)}
    assert len(seeds) > 1


def test_corpus_texts_hold_every_training_text_and_the_instructions(tmp_path):
    texts = corpus_texts(_manifest(tmp_path))
    for clip in CLIPS:
        assert set(clip.captions + clip.labels) <= set(texts)
        assert {f"{pair.question} {pair.answer}" for pair in clip.qa} <= set(texts)
    assert set(_instructions("caption")) <= set(texts)


def test_answer_documents_state_each_answer_before_its_question(tmp_path):
    train = _manifest(tmp_path)
    documents = answer_documents(train, seed=0)
    pairs = [pair for clip in CLIPS for pair in clip.qa]
    assert len(documents) == len(pairs)
    for document, pair in zip(documents, pairs, strict=True):
        assert document.startswith(f"{pair.answer}. ") and document.endswith(f"{pair.question} {pair.answer}")
        instruction = document[len(pair.answer) + 2 : -(len(pair.answer) + 1)]
        assert instruction in {template.format(question=pair.question) for template in TEMPLATES["qa"]}
    assert answer_documents(train, seed=5) == answer_documents(train, seed=5)
    assert len({tuple(answer_documents(train, seed=seed)) for seed in range(8)}) > 1
