"""ATC: similarity, temperature and InfoNCE checked against plain numpy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mint.errors import ConfigError, MintError
from mint.objectives import ContentMatches, ContrastiveLoss, LearnableTemperature, audio_text_similarity


def _normalised(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def _reference_similarity(audio: np.ndarray, text: np.ndarray) -> np.ndarray:
    result = np.empty((audio.shape[0], text.shape[0]))
    for i in range(audio.shape[0]):
        for j in range(text.shape[0]):
            result[i, j] = max(float(np.dot(audio[i, q], text[j])) for q in range(audio.shape[1]))
    return result


def _same_ids(local: list[int], everyone: list[int]) -> ContentMatches:
    """Positives where two pairs carry the same id, both directions."""
    same = torch.tensor([[a == b for b in everyone] for a in local])
    return ContentMatches(same, same.clone())


def _reference_log_softmax(row: np.ndarray) -> np.ndarray:
    shifted = row - row.max()
    return shifted - math.log(sum(math.exp(value) for value in shifted))


def _reference_infonce(sim: np.ndarray, temperature: float, pair_ids: list[int] | None = None) -> float:
    """Symmetric InfoNCE of a full (single-process) batch with multiple positives spread evenly."""
    batch = sim.shape[0]
    ids = pair_ids if pair_ids is not None else list(range(batch))
    total = 0.0
    for matrix in (sim, sim.T):
        for i in range(batch):
            log_probs = _reference_log_softmax(matrix[i] / temperature)
            positives = [j for j in range(batch) if ids[j] == ids[i]]
            total += -sum(log_probs[j] for j in positives) / len(positives)
    return total / (2 * batch)


def test_similarity_is_max_over_queries() -> None:
    audio = _normalised(3, 5, 8, seed=0)
    text = _normalised(4, 8, seed=1)
    expected = _reference_similarity(audio.numpy(), text.numpy())
    np.testing.assert_allclose(audio_text_similarity(audio, text).numpy(), expected, rtol=1e-12)


def test_similarity_rejects_mismatched_sizes() -> None:
    with pytest.raises(MintError, match="text_embeds"):
        audio_text_similarity(torch.zeros(2, 3, 8), torch.zeros(2, 7))
    with pytest.raises(MintError, match="audio_embeds"):
        audio_text_similarity(torch.zeros(2, 8), torch.zeros(2, 8))


def test_temperature_starts_at_init_and_gets_gradients() -> None:
    temperature = LearnableTemperature(init=0.07)
    value = temperature()
    assert value.item() == pytest.approx(0.07)
    (2.0 * value).backward()
    assert temperature.value.grad.item() == pytest.approx(2.0)


@pytest.mark.parametrize(("written", "expected"), [(1e-6, 0.001), (3.0, 0.5), (-1.0, 0.001), (0.2, 0.2)])
def test_temperature_is_clamped_on_use(written: float, expected: float) -> None:
    temperature = LearnableTemperature(init=0.07, min=0.001, max=0.5)
    with torch.no_grad():
        temperature.value.fill_(written)
    assert temperature().item() == pytest.approx(expected)
    # The parameter itself is brought back, so the next optimiser step starts inside the range.
    assert temperature.value.item() == pytest.approx(expected)


def test_temperature_can_be_read_twice_before_backward() -> None:
    temperature = LearnableTemperature()
    loss = torch.tensor(1.0) / temperature() + torch.tensor(2.0) / temperature()
    loss.backward()
    assert temperature.value.grad.item() == pytest.approx(-3.0 / 0.07**2, rel=1e-5)


@pytest.mark.parametrize(("init", "low", "high"), [(0.07, 0.1, 0.5), (0.07, 0.0, 0.5), (0.6, 0.001, 0.5)])
def test_temperature_rejects_bad_range(init: float, low: float, high: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        LearnableTemperature(init=init, min=low, max=high)


def test_contrastive_loss_matches_reference() -> None:
    audio = _normalised(6, 4, 16, seed=2)
    text = _normalised(6, 16, seed=3)
    result = ContrastiveLoss()(audio, text, 0.1)
    sim = _reference_similarity(audio.numpy(), text.numpy())
    assert result.loss.item() == pytest.approx(_reference_infonce(sim, 0.1), rel=1e-6)
    # The similarities handed to hard-negative mining are cosines, not divided by the temperature.
    np.testing.assert_allclose(result.sim_a2t.numpy(), sim, rtol=1e-6)
    np.testing.assert_allclose(result.sim_t2a.numpy(), sim.T, rtol=1e-6)
    assert not result.sim_a2t.requires_grad and not result.sim_t2a.requires_grad


def test_contrastive_loss_with_duplicate_pairs_matches_reference() -> None:
    pair_ids = [7, 3, 7, 9, 3, 1]
    audio = _normalised(6, 2, 8, seed=4)
    text = _normalised(6, 8, seed=5)
    result = ContrastiveLoss()(audio, text, 0.05, positives=_same_ids(pair_ids, pair_ids))
    sim = _reference_similarity(audio.numpy(), text.numpy())
    assert result.loss.item() == pytest.approx(_reference_infonce(sim, 0.05, pair_ids), rel=1e-6)


def test_positives_of_each_pair_alone_equal_default_targets() -> None:
    audio = _normalised(5, 3, 8, seed=6)
    text = _normalised(5, 8, seed=7)
    loss = ContrastiveLoss()
    plain = loss(audio, text, 0.07).loss
    ids = [10, 20, 30, 40, 50]
    with_positives = loss(audio, text, 0.07, positives=_same_ids(ids, ids)).loss
    assert with_positives.item() == pytest.approx(plain.item(), rel=1e-9)


def test_positives_may_differ_by_direction() -> None:
    """Caption 0 is also a caption of clip 1 (clip 1 -> caption 0 matches) but caption 1 is not one of clip
    0's: the clip-to-caption and caption-to-clip targets differ."""
    audio = _normalised(3, 2, 8, seed=10)
    text = _normalised(3, 8, seed=11)
    eye = torch.eye(3, dtype=torch.bool)
    clip_to_caption = eye.clone()
    clip_to_caption[1, 0] = True
    caption_to_clip = eye.clone()
    caption_to_clip[0, 1] = True
    result = ContrastiveLoss()(audio, text, 0.1, positives=ContentMatches(clip_to_caption, caption_to_clip))
    logits = _reference_similarity(audio.numpy(), text.numpy()) / 0.1
    expected = 0.0
    for matrix, positives in ((logits, clip_to_caption.numpy()), (logits.T, caption_to_clip.numpy())):
        for i in range(3):
            columns = np.flatnonzero(positives[i])
            expected -= sum(_reference_log_softmax(matrix[i])[columns]) / len(columns) / 3 / 2
    assert result.loss.item() == pytest.approx(expected, rel=1e-9)


def test_contrastive_gradient_reaches_embeddings_and_temperature() -> None:
    audio = _normalised(4, 3, 8, seed=8).float().requires_grad_(True)
    text = _normalised(4, 8, seed=9).float().requires_grad_(True)
    temperature = LearnableTemperature()
    ContrastiveLoss()(audio, text, temperature()).loss.backward()
    for grad in (audio.grad, text.grad, temperature.value.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_contrastive_loss_checks_inputs() -> None:
    loss = ContrastiveLoss()
    with pytest.raises(MintError, match="text_embeds"):
        loss(torch.zeros(3, 2, 4), torch.zeros(2, 4), 0.1)
    with pytest.raises(MintError, match="temperature"):
        loss(torch.zeros(2, 2, 4), torch.zeros(2, 4), 0.0)
    with pytest.raises(MintError, match=r"positives\.clip_to_caption"):
        loss(torch.zeros(2, 2, 4), torch.zeros(2, 4), 0.1, positives=_same_ids([1, 2, 3], [1, 2]))
    not_own = ContentMatches(torch.zeros(2, 2, dtype=torch.bool), torch.eye(2, dtype=torch.bool))
    with pytest.raises(MintError, match="own pair"):
        loss(torch.zeros(2, 2, 4), torch.zeros(2, 4), 0.1, positives=not_own)
    with pytest.raises(ConfigError, match="rank"):
        ContrastiveLoss(rank=2, world_size=2)


def test_world_size_without_process_group_is_reported() -> None:
    with pytest.raises(MintError, match="process group"):
        ContrastiveLoss(rank=0, world_size=2)(torch.zeros(2, 2, 4), torch.zeros(2, 4), 0.1)
