"""ATG: decoder inputs on a hand-worked batch and the shifted loss against a loop reference."""

from __future__ import annotations

import math

import pytest
import torch

from mint.errors import MintError
from mint.objectives import (
    IGNORE_INDEX,
    generation_loss,
    next_token_targets,
    prepare_generation_inputs,
    target_loss,
)


def test_prepare_generation_inputs_hand_worked() -> None:
    cls, sep, pad, bos = 101, 102, 0, 30522
    input_ids = torch.tensor([[cls, 7, 8, 9, sep], [cls, 5, sep, pad, pad]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    decoder_ids, labels = prepare_generation_inputs(input_ids, attention_mask, bos, pad)
    assert decoder_ids.tolist() == [[bos, 7, 8, 9, sep], [bos, 5, sep, pad, pad]]
    ignore = IGNORE_INDEX
    assert labels.tolist() == [[ignore, 7, 8, 9, sep], [ignore, 5, sep, ignore, ignore]]
    assert input_ids[0, 0] == cls, "the caller's tensor must not be modified"


def test_padding_is_taken_from_the_mask_as_well_as_the_pad_id() -> None:
    input_ids = torch.tensor([[101, 4, 102, 77]])
    attention_mask = torch.tensor([[1, 1, 1, 0]])
    _, labels = prepare_generation_inputs(input_ids, attention_mask, 1, 0)
    assert labels.tolist() == [[IGNORE_INDEX, 4, 102, IGNORE_INDEX]]


def test_prepare_generation_inputs_checks_shapes() -> None:
    with pytest.raises(MintError, match="attention_mask"):
        prepare_generation_inputs(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4), 1, 0)
    with pytest.raises(MintError, match="input_ids"):
        prepare_generation_inputs(torch.zeros(2, 3), torch.ones(2, 3), 1, 0)


def _reference_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> float:
    """Loop over every (row, position): position t is scored on label t + 1."""
    total, count = 0.0, 0
    vocab = logits.shape[-1]
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target == IGNORE_INDEX:
                continue
            values = logits[b, t].tolist()
            top = max(values)
            log_norm = top + math.log(sum(math.exp(v - top) for v in values))
            log_probs = [v - log_norm for v in values]
            total += -(1 - smoothing) * log_probs[target] - smoothing * sum(log_probs) / vocab
            count += 1
    return total / count


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_generation_loss_matches_reference(smoothing: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=generator, dtype=torch.float64)
    input_ids = torch.randint(1, 11, (3, 6), generator=generator)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    _, labels = prepare_generation_inputs(input_ids, attention_mask, 0, 0)
    loss = generation_loss(logits, labels, label_smoothing=smoothing)
    assert loss.item() == pytest.approx(_reference_loss(logits, labels, smoothing), rel=1e-6)


def test_generation_loss_without_targets_is_zero_with_graph() -> None:
    logits = torch.randn(2, 3, 5, requires_grad=True)
    labels = torch.full((2, 3), IGNORE_INDEX)
    loss = generation_loss(logits, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(2, 3, 5))


def test_generation_loss_checks_inputs() -> None:
    with pytest.raises(MintError, match="labels"):
        generation_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(MintError, match="label_smoothing"):
        generation_loss(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), label_smoothing=1.0)


def test_next_token_targets_hand_worked() -> None:
    ignore = IGNORE_INDEX
    labels = torch.tensor(
        [[ignore, 5, 6, ignore], [ignore, 7, ignore, ignore], [ignore, ignore, ignore, ignore]]
    )
    positions, targets = next_token_targets(labels)
    assert positions.tolist() == [
        [True, True, False, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
    assert targets.tolist() == [5, 6, 7]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_head_at_target_positions_gives_the_loss_and_gradients_of_the_head_everywhere(
    smoothing: float,
) -> None:
    # What the stage-1 objective does: the LM head only where a next token is predicted.
    generator = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(8, 11, dtype=torch.float64)
    hidden = torch.randn(3, 6, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    input_ids = torch.randint(1, 11, (3, 6), generator=generator)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    _, labels = prepare_generation_inputs(input_ids, attention_mask, 0, 0)

    everywhere = generation_loss(head(hidden), labels, label_smoothing=smoothing)
    (grad_everywhere,) = torch.autograd.grad(everywhere, hidden)
    positions, targets = next_token_targets(labels)
    at_targets = target_loss(head(hidden[positions]), targets, label_smoothing=smoothing)
    (grad_at_targets,) = torch.autograd.grad(at_targets, hidden)

    assert at_targets.item() == pytest.approx(
        _reference_loss(head(hidden).detach(), labels, smoothing), rel=1e-9
    )
    torch.testing.assert_close(at_targets, everywhere, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad_at_targets, grad_everywhere, rtol=1e-12, atol=1e-15)
