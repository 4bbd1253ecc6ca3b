"""ATM: hard-negative sampling rules and frequencies, matching loss and caption keys."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from mint.errors import MintError
from mint.objectives import (
    caption_key,
    caption_keys,
    match_logits_from_queries,
    matching_loss,
    sample_hard_negatives,
)

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Thousands of calls on tiny tensors: intra-op threads only add contention on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _random_batch(seed: int, batch: int, world: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    total = batch * world
    return {
        "sim_a2t": torch.randn(batch, total, generator=generator) * 5,
        "sim_t2a": torch.randn(batch, total, generator=generator) * 5,
        # Few distinct values so that clips and captions repeat within the batch.
        "audio_keys": torch.randint(0, max(2, total // 2), (total,), generator=generator),
        "text_keys": torch.randint(0, max(2, total // 3), (total,), generator=generator),
        "rank": int(torch.randint(0, world, (1,), generator=generator)),
    }


def _allowed(audio_keys: list[int], text_keys: list[int], anchor: int, candidate: int) -> bool:
    return (
        candidate != anchor
        and audio_keys[candidate] != audio_keys[anchor]
        and text_keys[candidate] != text_keys[anchor]
    )


@pytest.mark.usefixtures("one_torch_thread")
def test_negatives_never_positive_same_caption_or_same_clip() -> None:
    for seed in range(200):
        batch, world = 1 + seed % 5, 1 + seed % 3
        inputs = _random_batch(seed, batch, world)
        result = sample_hard_negatives(**inputs, generator=torch.Generator().manual_seed(seed))
        audio_keys, text_keys = inputs["audio_keys"].tolist(), inputs["text_keys"].tolist()
        for i in range(batch):
            anchor = inputs["rank"] * batch + i
            any_allowed = any(_allowed(audio_keys, text_keys, anchor, j) for j in range(batch * world))
            for index, valid in (
                (result.text_index, result.text_valid),
                (result.audio_index, result.audio_valid),
            ):
                assert bool(valid[i]) == any_allowed
                assert 0 <= int(index[i]) < batch * world
                if valid[i]:
                    assert _allowed(audio_keys, text_keys, anchor, int(index[i]))


def test_all_identical_captions_are_flagged_invalid() -> None:
    sims = torch.tensor([[1e4, -1e4, 3.0, 0.0]] * 4)
    result = sample_hard_negatives(
        sims, sims.clone(), torch.arange(4), torch.full((4,), 42), 0, torch.Generator().manual_seed(0)
    )
    for index, valid in ((result.text_index, result.text_valid), (result.audio_index, result.audio_valid)):
        assert not valid.any()
        assert ((index >= 0) & (index < 4)).all()
    loss = matching_loss(
        torch.randn(4, 2, requires_grad=True), torch.zeros(4, dtype=torch.long), result.text_valid
    )
    assert torch.isfinite(loss) and loss.item() == 0.0


def test_batch_of_one_is_flagged_invalid() -> None:
    sims = torch.tensor([[0.3]])
    result = sample_hard_negatives(
        sims, sims, torch.tensor([5]), torch.tensor([6]), 0, torch.Generator().manual_seed(0)
    )
    assert result.text_index.tolist() == [0] and result.audio_index.tolist() == [0]
    assert not result.text_valid.any() and not result.audio_valid.any()


def test_extreme_similarities_pick_the_largest_allowed() -> None:
    sim = torch.tensor([[5e4, 1e4, -5e4, 2e4]])
    result = sample_hard_negatives(
        sim, sim, torch.arange(4), torch.arange(4), 0, torch.Generator().manual_seed(3)
    )
    # Column 0 is the positive; among the rest 3 (2e4) dominates completely.
    assert result.text_index.tolist() == [3] and result.audio_index.tolist() == [3]


@pytest.mark.usefixtures("one_torch_thread")
def test_sampling_frequencies_follow_softmax_over_allowed_candidates() -> None:
    batch, rank = 2, 1
    sim_a2t = torch.tensor([[0.5, 1.0, 2.0, -1.0], [0.0, 1.5, 0.2, 0.7]])
    sim_t2a = torch.tensor([[1.0, 0.0, 0.3, 0.1], [2.0, -0.5, 0.4, 1.2]])
    audio_keys = torch.tensor([1, 2, 3, 4])
    text_keys = torch.tensor([10, 11, 10, 12])  # pair 0 repeats the caption of pair 2
    generator = torch.Generator().manual_seed(1234)
    draws = 2000
    samples = [
        sample_hard_negatives(sim_a2t, sim_t2a, audio_keys, text_keys, rank, generator) for _ in range(draws)
    ]
    text_picks = torch.stack([sample.text_index for sample in samples])
    audio_picks = torch.stack([sample.audio_index for sample in samples])
    text_counts = np.stack([np.bincount(text_picks[:, i].numpy(), minlength=4) for i in range(batch)])
    audio_counts = np.stack([np.bincount(audio_picks[:, i].numpy(), minlength=4) for i in range(batch)])
    for sims, counts in ((sim_a2t, text_counts), (sim_t2a, audio_counts)):
        for i in range(batch):
            anchor = rank * batch + i
            allowed = [j for j in range(4) if _allowed(audio_keys.tolist(), text_keys.tolist(), anchor, j)]
            weights = [math.exp(float(sims[i, j])) for j in allowed]
            expected = [draws * weight / sum(weights) for weight in weights]
            assert counts[i].sum() == draws and counts[i, allowed].sum() == draws
            assert chisquare(counts[i, allowed], expected).pvalue > 1e-3


def test_sampling_is_deterministic_under_a_seed() -> None:
    inputs = _random_batch(7, batch=16, world=2)
    first = sample_hard_negatives(**inputs, generator=torch.Generator().manual_seed(11))
    second = sample_hard_negatives(**inputs, generator=torch.Generator().manual_seed(11))
    other = sample_hard_negatives(**inputs, generator=torch.Generator().manual_seed(12))
    assert torch.equal(first.text_index, second.text_index)
    assert torch.equal(first.audio_index, second.audio_index)
    assert not (
        torch.equal(first.text_index, other.text_index) and torch.equal(first.audio_index, other.audio_index)
    )


def test_sampling_rejects_bad_inputs() -> None:
    generator = torch.Generator()
    sims = torch.zeros(2, 4)
    keys = torch.arange(4)
    with pytest.raises(MintError, match="rank"):
        sample_hard_negatives(sims, sims, keys, keys, 2, generator)
    with pytest.raises(MintError, match="text_keys"):
        sample_hard_negatives(sims, sims, keys, torch.arange(3), 0, generator)
    with pytest.raises(MintError, match="finite"):
        sample_hard_negatives(torch.full((2, 4), float("nan")), sims, keys, keys, 0, generator)


def test_matching_loss_matches_reference_over_valid_rows() -> None:
    logits = torch.tensor([[0.2, 1.5], [2.0, -1.0], [0.3, 0.3], [-2.0, 4.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 0, 0])
    valid = torch.tensor([True, True, False, True])
    expected = 0.0
    for row, label in ((0, 1), (1, 0), (3, 0)):
        values = logits[row].tolist()
        top = max(values)
        log_norm = top + math.log(sum(math.exp(v - top) for v in values))
        expected += (log_norm - values[label]) / 3
    loss = matching_loss(logits, labels, valid)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[2].abs().sum() == 0 and logits.grad[3].abs().sum() > 0


def test_matching_loss_without_valid_rows_is_zero_with_graph() -> None:
    logits = torch.randn(3, 2, requires_grad=True)
    loss = matching_loss(logits, torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 2))


def test_matching_loss_checks_inputs() -> None:
    with pytest.raises(MintError, match="valid"):
        matching_loss(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), torch.ones(3))
    with pytest.raises(MintError, match="labels"):
        matching_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), torch.ones(3, dtype=torch.bool))


def test_match_logits_average_over_queries() -> None:
    per_query = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
    expected = [[sum(per_query[n, q, c].item() for q in range(5)) / 5 for c in range(2)] for n in range(3)]
    np.testing.assert_allclose(match_logits_from_queries(per_query).numpy(), expected, rtol=1e-6)


def test_caption_key_normalises_case_and_whitespace() -> None:
    assert caption_key("A dog  barks\n") == caption_key("a dog barks") == caption_key("  A DOG\tBARKS")
    assert caption_key("a dog barks") != caption_key("a dog growls")
    keys = caption_keys(["a", "b", "A "])
    assert keys.dtype == torch.long and keys[0] == keys[2] and keys[0] != keys[1]
    assert all(0 <= caption_key(text) < 2**63 for text in ("", "x", "a cat meows" * 50))


def test_caption_key_is_stable_across_processes() -> None:
    # A different hash seed in the child would change anything built on Python's own str hash.
    script = "from mint.objectives.matching import caption_key; print(caption_key('Birds chirp at dawn'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(SRC)}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert int(completed.stdout) == caption_key("Birds chirp at dawn")
