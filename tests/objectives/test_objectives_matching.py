"""ATM: hard-negative sampling rules and frequencies, matching loss, log-odds and the re-ranking score."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from mint.errors import ConfigError, MintError
from mint.objectives import (
    ContentMatches,
    NegativeSampling,
    match_log_odds,
    match_logits_from_queries,
    matching_loss,
    rerank_score,
    sample_hard_negatives,
)

HARDEST = NegativeSampling(temperature=1.0, uniform_share=0.0)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Thousands of calls on tiny tensors: intra-op threads only add contention on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _random_case(seed: int, batch: int, world: int) -> dict:
    """Similarities and random match matrices (each row's own column a match) of one rank's rows."""
    generator = torch.Generator().manual_seed(seed)
    total = batch * world
    rank = int(torch.randint(0, world, (1,), generator=generator))
    own = torch.zeros(batch, total, dtype=torch.bool)
    own[torch.arange(batch), torch.arange(batch) + rank * batch] = True
    clip_to_caption = (torch.rand(batch, total, generator=generator) < 0.4) | own
    caption_to_clip = (torch.rand(batch, total, generator=generator) < 0.4) | own
    return {
        "sim_a2t": torch.rand(batch, total, generator=generator) * 2 - 1,
        "sim_t2a": torch.rand(batch, total, generator=generator) * 2 - 1,
        "matches": ContentMatches(clip_to_caption, caption_to_clip),
    }


@pytest.mark.usefixtures("one_torch_thread")
def test_negatives_are_never_matches_and_rows_without_candidates_are_invalid() -> None:
    for seed in range(200):
        batch, world = 1 + seed % 5, 1 + seed % 3
        case = _random_case(seed, batch, world)
        sampling = NegativeSampling(temperature=0.05 + seed % 4 * 0.3, uniform_share=seed % 3 / 2)
        result = sample_hard_negatives(
            **case, generator=torch.Generator().manual_seed(seed), sampling=sampling
        )
        for index, valid, matches in (
            (result.text_index, result.text_valid, case["matches"].clip_to_caption.tolist()),
            (result.audio_index, result.audio_valid, case["matches"].caption_to_clip.tolist()),
        ):
            for i in range(batch):
                allowed = [j for j in range(batch * world) if not matches[i][j]]
                assert bool(valid[i]) == bool(allowed)
                assert 0 <= int(index[i]) < batch * world
                if valid[i]:
                    assert int(index[i]) in allowed


def test_a_row_whose_candidates_all_match_is_flagged_invalid_and_stays_finite() -> None:
    every = torch.ones(4, 4, dtype=torch.bool)
    sims = torch.tensor([[1.0, -1.0, 0.3, 0.0]] * 4)
    result = sample_hard_negatives(
        sims, sims.clone(), ContentMatches(every, every.clone()), torch.Generator().manual_seed(0), HARDEST
    )
    for index, valid in ((result.text_index, result.text_valid), (result.audio_index, result.audio_valid)):
        assert not valid.any()
        assert ((index >= 0) & (index < 4)).all()
    loss = matching_loss(
        torch.randn(4, 2, requires_grad=True), torch.zeros(4, dtype=torch.long), result.text_valid
    )
    assert torch.isfinite(loss) and loss.item() == 0.0


def test_no_uniform_share_and_a_cold_temperature_pick_the_most_similar_allowed() -> None:
    sim = torch.tensor([[0.9, 0.8, -0.5, 0.6]])
    matches = torch.tensor([[True, True, False, False]])  # column 1 is another caption of the clip
    result = sample_hard_negatives(
        sim,
        sim,
        ContentMatches(matches, matches.clone()),
        torch.Generator().manual_seed(3),
        NegativeSampling(temperature=1e-3, uniform_share=0.0),
    )
    assert result.text_index.tolist() == [3] and result.audio_index.tolist() == [3]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    "sampling", [NegativeSampling(0.5, 0.0), NegativeSampling(0.2, 0.4), NegativeSampling(0.1, 1.0)]
)
def test_sampling_frequencies_follow_the_mixture_of_softmax_and_uniform(sampling: NegativeSampling) -> None:
    sim_a2t = torch.tensor([[0.5, 0.1, 0.2, -0.1, 0.3], [0.0, 0.15, 0.2, 0.07, -0.3]])
    sim_t2a = torch.tensor([[0.1, 0.0, 0.3, 0.1, 0.2], [0.2, -0.05, 0.4, 0.12, 0.0]])
    # Rows are global pairs 2 and 3 (rank 1 of a batch of 2, plus one more column); pair 0 shares row 0's
    # caption set in one direction only.
    clip_to_caption = torch.tensor([[True, False, True, False, False], [False, False, False, True, False]])
    caption_to_clip = torch.tensor([[False, False, True, False, False], [False, True, False, True, False]])
    matches = ContentMatches(clip_to_caption, caption_to_clip)
    generator = torch.Generator().manual_seed(1234)
    draws = 3000
    samples = [sample_hard_negatives(sim_a2t, sim_t2a, matches, generator, sampling) for _ in range(draws)]
    for sims, blocked, picks in (
        (sim_a2t, clip_to_caption, torch.stack([s.text_index for s in samples])),
        (sim_t2a, caption_to_clip, torch.stack([s.audio_index for s in samples])),
    ):
        for i in range(2):
            allowed = [j for j in range(5) if not blocked[i, j]]
            weights = [math.exp(float(sims[i, j]) / sampling.temperature) for j in allowed]
            expected = [
                draws
                * ((1 - sampling.uniform_share) * w / sum(weights) + sampling.uniform_share / len(allowed))
                for w in weights
            ]
            counts = np.bincount(picks[:, i].numpy(), minlength=5)
            assert counts[allowed].sum() == draws
            assert chisquare(counts[allowed], expected).pvalue > 1e-3


def test_sampling_is_deterministic_under_a_seed() -> None:
    case = _random_case(7, batch=16, world=2)
    first = sample_hard_negatives(**case, generator=torch.Generator().manual_seed(11))
    second = sample_hard_negatives(**case, generator=torch.Generator().manual_seed(11))
    other = sample_hard_negatives(**case, generator=torch.Generator().manual_seed(12))
    assert torch.equal(first.text_index, second.text_index)
    assert torch.equal(first.audio_index, second.audio_index)
    assert not (
        torch.equal(first.text_index, other.text_index) and torch.equal(first.audio_index, other.audio_index)
    )


def test_sampling_rejects_bad_inputs() -> None:
    generator = torch.Generator()
    sims = torch.zeros(2, 4)
    matches = ContentMatches(torch.eye(2, 4, dtype=torch.bool), torch.eye(2, 4, dtype=torch.bool))
    with pytest.raises(MintError, match=r"matches\.caption_to_clip"):
        sample_hard_negatives(
            sims, sims, ContentMatches(matches.clip_to_caption, torch.eye(2, dtype=torch.bool)), generator
        )
    with pytest.raises(MintError, match="finite"):
        sample_hard_negatives(torch.full((2, 4), float("nan")), sims, matches, generator)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("temperature", {"temperature": 0.0}),
        ("temperature", {"temperature": float("inf")}),
        ("uniform_share", {"uniform_share": 1.5}),
        ("uniform_share", {"uniform_share": -0.1}),
    ],
)
def test_negative_sampling_settings_are_checked(field: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=rf"negatives\.{field}"):
        NegativeSampling(**kwargs)


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


def test_log_odds_is_the_log_ratio_of_the_match_probabilities() -> None:
    logits = torch.tensor([[0.5, 2.0], [1.0, -3.0]], dtype=torch.float64)
    probabilities = torch.softmax(logits, dim=1)
    expected = torch.log(probabilities[:, 1] / probabilities[:, 0])
    torch.testing.assert_close(match_log_odds(logits), expected)


def test_rerank_score_adds_the_weighted_log_odds() -> None:
    assert rerank_score(0.25, -2.0, 0.1) == pytest.approx(0.05)
    np.testing.assert_allclose(rerank_score(np.array([0.5, 0.2]), np.array([1.0, 4.0]), 0.0), [0.5, 0.2])
