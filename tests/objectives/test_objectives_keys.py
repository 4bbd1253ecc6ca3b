"""Content keys: which clip-caption pairs are the same content, checked on hand-worked batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mint.errors import MintError
from mint.objectives import ContentKeys, caption_key, caption_keys, content_key, content_matches

SRC = Path(__file__).resolve().parents[2] / "src"


def _rows(rows: list[tuple[str, list[str], list[str]]]) -> ContentKeys:
    """Keys of (caption, every caption of its clip, group names) rows, keyed the way the data keys them."""
    return ContentKeys.from_rows(
        [caption_key(caption) for caption, _, _ in rows],
        [[caption_key(text) for text in captions] for _, captions, _ in rows],
        [[content_key("group", name) for name in groups] for _, _, groups in rows],
    )


# Clip A and clip B share the caption "a dog"; clips C and D share a group (one event description).
BATCH = [
    ("a dog barks", ["a dog barks", "A  dog"], ["clip-a"]),
    ("a dog", ["a dog", "woof"], ["clip-b"]),
    ("rain falls", ["rain falls"], ["clip-c", "events-1"]),
    ("heavy rain", ["heavy rain"], ["clip-d", "events-1"]),
]
CLIP_TO_CAPTION = [  # clip i is described by caption j
    [True, True, False, False],  # "a dog" is one of clip A's captions
    [False, True, False, False],  # "a dog barks" is not one of clip B's
    [False, False, True, True],
    [False, False, True, True],
]
CAPTION_TO_CLIP = [  # caption i describes clip j
    [True, False, False, False],
    [True, True, False, False],
    [False, False, True, True],
    [False, False, True, True],
]


def test_matches_of_a_hand_worked_batch() -> None:
    keys = _rows(BATCH)
    matches = content_matches(keys, keys, rank=0)
    assert matches.clip_to_caption.tolist() == CLIP_TO_CAPTION
    assert matches.caption_to_clip.tolist() == CAPTION_TO_CLIP


def test_local_rows_of_a_later_rank_are_matched_against_the_global_batch() -> None:
    everyone = _rows(BATCH)
    local = _rows(BATCH[2:])
    matches = content_matches(local, everyone, rank=1)
    assert matches.clip_to_caption.tolist() == CLIP_TO_CAPTION[2:]
    assert matches.caption_to_clip.tolist() == CAPTION_TO_CLIP[2:]
    with pytest.raises(MintError, match="rank"):
        content_matches(local, everyone, rank=2)


def test_padding_never_matches_padding() -> None:
    # Row 0 has one group, row 1 three: row 0's padded slots must not match each other's padding.
    keys = ContentKeys.from_rows([1, 2], [[1], [2]], [[10], [20, 30, 40]])
    assert keys.groups.shape == (2, 3)
    matches = content_matches(keys, keys, rank=0)
    assert matches.clip_to_caption.tolist() == [[True, False], [False, True]]
    assert matches.caption_to_clip.tolist() == [[True, False], [False, True]]


def test_each_rows_own_pair_is_a_match_even_when_its_keys_do_not_say_so() -> None:
    keys = ContentKeys.from_rows([5, 6], [[7], [8]], [[], []])
    matches = content_matches(keys, keys, rank=0)
    assert matches.clip_to_caption.tolist() == [[True, False], [False, True]]


def test_gather_in_one_process_keeps_the_keys() -> None:
    keys = _rows(BATCH)
    gathered = keys.gather()
    for name in ("caption", "clip_captions", "groups"):
        assert torch.equal(getattr(gathered, name), getattr(keys, name))


def test_keys_are_checked() -> None:
    with pytest.raises(MintError, match=r"keys\.caption"):
        ContentKeys.from_rows([-1], [[1]], [[1]])
    with pytest.raises(MintError, match="rows in clip_captions"):
        ContentKeys(torch.tensor([1, 2]), torch.tensor([[1]]), torch.tensor([[1], [2]]))
    with pytest.raises(MintError, match=r"keys\.groups"):
        ContentKeys(torch.tensor([1]), torch.tensor([[1]]), torch.tensor([[1.0]]))


def test_caption_key_normalises_case_and_whitespace() -> None:
    assert caption_key("A dog  barks\n") == caption_key("a dog barks") == caption_key("  A DOG\tBARKS")
    assert caption_key("a dog barks") != caption_key("a dog growls")
    keys = caption_keys(["a", "b", "A "])
    assert keys.dtype == torch.long and keys[0] == keys[2] and keys[0] != keys[1]
    assert all(0 <= caption_key(text) < 2**63 for text in ("", "x", "a cat meows" * 50))


def test_group_keys_of_different_kinds_differ() -> None:
    assert content_key("clip", "dog") != content_key("labels", "dog")
    assert content_key("labels", "dog") == content_key("labels", "dog")
    assert 0 <= content_key("events", "a loud bell") < 2**63


def test_keys_are_stable_across_processes() -> None:
    # A different hash seed in the child would change anything built on Python's own str hash.
    script = (
        "from mint.objectives.keys import caption_key, content_key; "
        "print(caption_key('Birds chirp at dawn'), content_key('clip', 'x'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(SRC)}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert completed.stdout.split() == [
        str(caption_key("Birds chirp at dawn")),
        str(content_key("clip", "x")),
    ]
