"""Stage-2 `sequence` items: several clips read as one recording's windows, with questions whose answers
are worked out by hand from the clips' labels and captions; their place in the task mixture; and the
collated batch's `windows`."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from test_data_instructions import FRONTEND, VOCABULARY, manifest_source  # noqa: F401 (a fixture)

from mint.data.instructions import InstructionDataset, TaskWeights, collate_instructions
from mint.data.sequences import draw_parts, sequence_example, sequence_forms
from mint.data.sources import Clip
from mint.errors import ConfigError

# "siren" is in both parts, "dog" only in the first, "rain" only in the second.
PARTS = [
    Clip("a", ["a dog barks near a siren"], ["dog", "siren"]),
    Clip("b", ["rain falls while a siren wails", "a siren in the rain"], ["siren", "rain"]),
]


def _examples(parts: list[Clip], count: int = 400):
    return [sequence_example(parts, VOCABULARY, np.random.default_rng(seed)) for seed in range(count)]


def test_answers_follow_the_parts_labels_and_captions():
    examples = _examples(PARTS)
    assert {example.form for example in examples} == {"presence", "part", "describe_part", "order"}
    for example in examples:
        if example.form == "presence":
            sound = example.question.removeprefix("is there ").removeprefix("can you hear ").rstrip("?")
            sound = sound.removeprefix("an ").removeprefix("a ")
            assert example.answer == ("yes" if sound in {"dog", "siren", "rain"} else "no"), example
        elif example.form == "part":
            # Only a sound heard in exactly one part is asked about.
            assert ("dog" in example.question and example.answer == "part 1") or (
                "rain" in example.question and example.answer == "part 2"
            ), example
        elif example.form == "describe_part":
            part = int(example.question.split("part ")[1][0]) - 1
            assert example.answer in PARTS[part].captions, example
        else:
            # In order; the siren that ends part 1 and opens part 2 is said once.
            assert example.answer == "dog, siren, rain"
    presence = Counter(example.answer for example in examples if example.form == "presence")
    assert presence["yes"] > 0 and presence["no"] > 0


def test_forms_need_their_data():
    same = [Clip("a", [], ["dog"]), Clip("b", [], ["dog"])]
    # No sound in exactly one part, no captions: presence and order only.
    assert sequence_forms(same) == ["presence", "order"]
    assert sequence_forms([Clip("a", ["x"], []), Clip("b", [], ["dog"])]) == [
        "presence",
        "part",
        "describe_part",
    ]
    assert sequence_forms([Clip("a"), Clip("b")]) == []


def test_drawn_parts_are_distinct_hold_the_anchor_and_vary_in_number():
    sizes = Counter()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        parts = draw_parts(10, seed % 10, 4, rng)
        assert seed % 10 in parts and len(set(parts)) == len(parts) and all(0 <= p < 10 for p in parts)
        sizes[len(parts)] += 1
    assert set(sizes) == {2, 3, 4}
    assert draw_parts(2, 1, 4, np.random.default_rng(0)) in ([0, 1], [1, 0])


def test_sequence_items_take_their_share_and_collate_as_consecutive_windows(manifest_source):  # noqa: F811
    tasks = TaskWeights(caption=1.0, classify=0.0, qa=1.0, tagging=0.0, custom=0.0, sequence=2.0)
    dataset = InstructionDataset(manifest_source, FRONTEND, seed=0, tasks=tasks, vocabulary=VOCABULARY)
    items = [dataset[(epoch, index)] for epoch in range(20) for index in range(len(manifest_source))]
    sequences = [item for item in items if item["task"] == "sequence"]
    # Weight 2 of 4 in all: about half the items.
    assert 0.4 < len(sequences) / len(items) < 0.6
    assert all(2 <= len(item["windows"]) <= 4 for item in sequences)
    assert dataset[(0, 3)]["instruction"] == dataset[(0, 3)]["instruction"]

    batch = collate_instructions(items[:8])
    counts = [len(item.get("windows", [item])) for item in items[:8]]
    assert any(count > 1 for count in counts) and batch["windows"] == counts
    assert batch["waveforms"].shape[0] == sum(counts)
    # The windows are the items' own waveforms, in order.
    waveforms = [part["waveform"] for item in items[:8] for part in item.get("windows", [item])]
    for row, waveform in enumerate(waveforms):
        torch.testing.assert_close(batch["waveforms"][row, : len(waveform)], torch.as_tensor(waveform))
    # A batch of single clips has no `windows`.
    singles = [item for item in items if item["task"] != "sequence"][:4]
    assert "windows" not in collate_instructions(singles)


def test_sequence_settings_are_checked():
    with pytest.raises(ConfigError, match=r"data\.sequence_windows"):
        InstructionDataset(None, FRONTEND, seed=0, tasks=TaskWeights(), custom=(), sequence_windows=1)
