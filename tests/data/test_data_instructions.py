"""Stage-2 instruction items: templates per task, sampled in training and fixed in evaluation, task
mixture by weight, user-defined instruction files, and (epoch, index) addressing for exact resume."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.data.instructions import (
    TEMPLATES,
    InstructionDataset,
    TaskWeights,
    clip_tasks,
    collate_instructions,
    evaluation_instruction,
    label_vocabulary,
    make_example,
    read_instruction_file,
)
from mint.data.manifest import ManifestRecord, QAPair, write_manifest
from mint.data.sampler import StepBatchSampler
from mint.data.sources import Clip, ManifestSource, SyntheticSource
from mint.data.synth.corpus import SynthSpec
from mint.errors import ConfigError, DataError

VOCABULARY = ["dog", "siren", "rain", "bell", "knock"]
FRONTEND = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=2.0))


def _clip(labels=("dog",), captions=("a dog barks", "a dog barks twice"), qa=None) -> Clip:
    pairs = qa if qa is not None else [QAPair("is there a dog?", "yes"), QAPair("how many sounds?", "one")]
    return Clip("c0", list(captions), list(labels), pairs)


def _wav(path, seconds=0.1, seed=0) -> str:
    rng = np.random.default_rng(seed)
    sf.write(str(path), (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32), 16000)
    return str(path)


@pytest.fixture
def manifest_source(tmp_path) -> ManifestSource:
    records = [
        ManifestRecord(
            f"clip{i}",
            _wav(tmp_path / f"clip{i}.wav", seed=i),
            captions=[f"{VOCABULARY[i % 5]} sound {i}", f"another caption {i}"],
            labels=[VOCABULARY[i % 5]],
            qa=[QAPair(f"question {i}?", f"answer {i}")],
        )
        for i in range(12)
    ]
    write_manifest(records, tmp_path / "m.jsonl")
    return ManifestSource.from_file(tmp_path / "m.jsonl")


def test_evaluation_examples_use_the_first_template_and_first_text():
    clip = _clip()
    assert make_example("caption", clip, VOCABULARY) == (TEMPLATES["caption"][0], "a dog barks")
    assert make_example("classify", clip, VOCABULARY) == (TEMPLATES["classify"][0], "dog")
    assert make_example("qa", clip, VOCABULARY) == ("is there a dog?", "yes")
    assert make_example("tagging", _clip(labels=("dog", "rain")), VOCABULARY) == (
        TEMPLATES["tagging"][0],
        "dog, rain",
    )
    assert evaluation_instruction("caption") == TEMPLATES["caption"][0]
    assert evaluation_instruction("qa", question="what is it?") == "what is it?"
    with pytest.raises(ConfigError, match="needs a question"):
        evaluation_instruction("qa")


def test_training_examples_vary_over_templates_and_texts():
    clip = _clip()
    seen = {
        task: {make_example(task, clip, VOCABULARY, np.random.default_rng(seed)) for seed in range(60)}
        for task in ("caption", "qa")
    }
    assert {instruction for instruction, _ in seen["caption"]} == set(TEMPLATES["caption"])
    assert {response for _, response in seen["caption"]} == set(clip.captions)
    questions = {instruction for instruction, _ in seen["qa"]}
    assert questions == {
        template.format(question=pair.question) for template in TEMPLATES["qa"] for pair in clip.qa
    }
    answers = {(instruction, response) for instruction, response in seen["qa"]}
    assert all(response == ("yes" if "dog" in instruction else "one") for instruction, response in answers)


def test_multiple_choice_holds_the_answer_and_shuffled_distractors():
    clip = _clip(labels=("dog", "rain"))
    orders = set()
    for seed in range(40):
        instruction, answer = make_example("classify", clip, VOCABULARY, np.random.default_rng(seed))
        assert answer in clip.labels
        options = instruction.split(": ")[1].split("?")[0].split(".")[0].split(", ")
        assert len(options) == len(set(options)) == 4
        assert answer in options
        assert [option for option in options if option in clip.labels] == [answer]
        assert set(options) <= set(VOCABULARY)
        orders.add(tuple(options).index(answer))
    assert orders == {0, 1, 2, 3}
    # Evaluation: fixed, sorted options.
    instruction, answer = make_example("classify", clip, VOCABULARY)
    assert answer == "dog"
    assert instruction == TEMPLATES["choice"][0].format(options="bell, dog, knock, siren")


def test_single_label_clips_get_open_and_multiple_choice_questions():
    forms = Counter()
    for seed in range(60):
        instruction, answer = make_example("classify", _clip(), VOCABULARY, np.random.default_rng(seed))
        assert answer == "dog"
        forms["open" if instruction in TEMPLATES["classify"] else "choice"] += 1
    assert forms["open"] > 10 and forms["choice"] > 10


def test_which_tasks_a_clip_supports():
    assert clip_tasks(_clip(), VOCABULARY) == ["caption", "classify", "qa", "tagging"]
    assert clip_tasks(_clip(labels=(), qa=[]), VOCABULARY) == ["caption"]
    # Several labels and nothing to tell them from: no classification question can be asked.
    assert clip_tasks(_clip(labels=("dog", "rain")), ["dog", "rain"]) == ["caption", "qa", "tagging"]
    with pytest.raises(DataError, match="no data for the 'qa' task"):
        make_example("qa", _clip(qa=[]), VOCABULARY)


def test_task_weights_are_validated():
    with pytest.raises(ConfigError, match=r"data.tasks.qa: expected a finite weight >= 0"):
        TaskWeights(qa=-1.0)
    with pytest.raises(ConfigError, match="every weight is 0"):
        TaskWeights(caption=0, classify=0, qa=0, tagging=0, custom=0)


def test_items_are_fixed_by_seed_epoch_and_index(manifest_source):
    dataset = InstructionDataset(
        manifest_source, FRONTEND, seed=3, tasks=TaskWeights(), vocabulary=VOCABULARY
    )
    first, again = dataset[(1, 5)], dataset[(1, 5)]
    assert first["instruction"] == again["instruction"] and first["response"] == again["response"]
    np.testing.assert_array_equal(first["waveform"], again["waveform"])
    other_epochs = {dataset[(epoch, 5)]["instruction"] for epoch in range(12)}
    assert len(other_epochs) > 2
    # What a sampler hands out for a step is the same whether the run started at step 0 or resumed.
    straight = StepBatchSampler(len(dataset), 4, 6, seed=3)
    resumed = StepBatchSampler(len(dataset), 4, 6, seed=3, start_step=4)
    tail = [[dataset[key]["response"] for key in batch] for batch in list(straight)[4:]]
    assert tail == [[dataset[key]["response"] for key in batch] for batch in resumed]


def test_task_mixture_follows_the_weights(manifest_source):
    weights = TaskWeights(caption=2.0, classify=1.0, qa=1.0, tagging=0.0, custom=0.0)
    dataset = InstructionDataset(manifest_source, FRONTEND, seed=0, tasks=weights, vocabulary=VOCABULARY)
    counts = Counter(dataset[(epoch, index)]["task"] for epoch in range(30) for index in range(12))
    total = sum(counts.values())
    assert set(counts) == {"caption", "classify", "qa"}
    # 360 draws: within ~4 standard deviations of the expected shares 1/2, 1/4, 1/4.
    assert abs(counts["caption"] / total - 0.5) < 0.11
    assert abs(counts["qa"] / total - 0.25) < 0.1


def test_evaluation_items_are_fixed_and_cover_clips_then_custom_lines(manifest_source, tmp_path):
    custom = read_instruction_file(_instruction_file(tmp_path))
    dataset = InstructionDataset(
        manifest_source, FRONTEND, 0, TaskWeights(caption=0.5), custom, VOCABULARY, train=False
    )
    assert len(dataset) == 12 + 2
    item = dataset[(4, 3)]
    # Highest weighted task of the clip (classify and qa weigh 1), first template, first text.
    assert item["task"] == "classify" and item["instruction"] == TEMPLATES["classify"][0]
    assert item["response"] == VOCABULARY[3]
    assert dataset[(0, 13)]["response"] == "a long whistle" and dataset[(0, 13)]["task"] == "custom"


def _instruction_file(tmp_path) -> str:
    audio = _wav(tmp_path / "whistle.wav", seed=9)
    lines = [
        {"audio": audio, "instruction": "Count the claps.", "response": "three"},
        {
            "id": "w1",
            "audio": "whistle.wav",
            "instruction": "Describe the whistle.",
            "response": "a long whistle",
        },
    ]
    path = tmp_path / "custom.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return str(path)


def test_custom_instruction_file_lines_are_read_and_mixed_in(manifest_source, tmp_path):
    custom = read_instruction_file(_instruction_file(tmp_path))
    assert [record.response for record in custom] == ["three", "a long whistle"]
    assert custom[1].audio == str(tmp_path / "whistle.wav") and custom[1].id == "w1"

    only = InstructionDataset(None, FRONTEND, 0, TaskWeights(), custom)
    assert len(only) == 2
    assert only[(0, 1)]["instruction"] == "Describe the whistle." and only[(0, 1)]["task"] == "custom"

    # custom weighs 1 against 1 + 1 + 1 + 0.5 for the clips' tasks: 1/4.5 of the items.
    mixed = InstructionDataset(manifest_source, FRONTEND, 0, TaskWeights(), custom, VOCABULARY)
    tasks = [mixed[(epoch, index)]["task"] for epoch in range(25) for index in range(12)]
    assert abs(tasks.count("custom") / len(tasks) - 1 / 4.5) < 0.1

    off = InstructionDataset(manifest_source, FRONTEND, 0, TaskWeights(custom=0.0), custom, VOCABULARY)
    assert all(off[(0, index)]["task"] != "custom" for index in range(12))
    with pytest.raises(ConfigError, match="no enabled task has data"):
        InstructionDataset(None, FRONTEND, 0, TaskWeights(custom=0.0), custom)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"audio": "a.wav", "instruction": "x"}', "field 'response' must be a non-empty string"),
        (
            '{"audio": "a.wav", "instruction": "x", "response": "y", "extra": 1}',
            r"unknown field\(s\) \['extra'\]",
        ),
        ('{"audio": "a.wav", "instruction": "x", "response": "y", "id": 3}', "field 'id' must be a string"),
    ],
)
def test_bad_instruction_lines_are_refused_naming_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"audio": "a.wav", "instruction": "i", "response": "r"}\n' + line + "\n")
    with pytest.raises(DataError, match=f"bad.jsonl:2: {message}"):
        read_instruction_file(path)
    with pytest.raises(DataError, match="instruction file not found"):
        read_instruction_file(tmp_path / "missing.jsonl")


def test_a_clip_with_no_enabled_task_is_reported(tmp_path):
    records = [ManifestRecord("bare", _wav(tmp_path / "bare.wav"), captions=["only a caption"])]
    write_manifest(records, tmp_path / "m.jsonl")
    source = ManifestSource.from_file(tmp_path / "m.jsonl")
    dataset = InstructionDataset(source, FRONTEND, 0, TaskWeights(caption=0.0), vocabulary=[])
    with pytest.raises(DataError, match="clip 'bare': has data for none of the enabled tasks"):
        dataset[(0, 0)]


def test_synthetic_source_gives_every_task_and_batches_collate():
    source = SyntheticSource(SynthSpec(num_clips=6, clip_seconds=2.1, max_events=2))
    assert label_vocabulary(source) == source.spec.vocabulary
    dataset = InstructionDataset(source, FRONTEND, 0, TaskWeights(), vocabulary=label_vocabulary(source))
    items = []
    for epoch in range(4):
        for index in range(6):
            item, clip = dataset[(epoch, index)], source.clip(index)
            if item["task"] == "tagging":
                assert item["response"] == ", ".join(clip.labels)
            if item["task"] == "caption":
                assert item["response"] in clip.captions
            items.append(item)
    assert {item["task"] for item in items} == {"caption", "classify", "qa", "tagging"}
    batch = collate_instructions(items[:3])
    assert batch["waveforms"].shape[0] == 3 and batch["lengths"].tolist() == [32000] * 3
    assert batch["responses"] == [item["response"] for item in items[:3]]
