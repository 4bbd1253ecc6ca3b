"""Attention masks checked against hand-written matrices (2 queries, 3 text tokens, last one padding)."""

from __future__ import annotations

import pytest
import torch

from mint.bridge import AttentionMode, BridgeInputError, build_attention_mask
from mint.bridge.masks import additive_mask

TEXT_MASK = torch.tensor([[1, 1, 0]])

# Rows attend to columns; order q0 q1 t0 t1 t2, with t2 padding (never a key).
EXPECTED = {
    AttentionMode.UNIMODAL: [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0],
    ],
    AttentionMode.BIDIRECTIONAL: [
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
    ],
    AttentionMode.CAUSAL: [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
    ],
}


@pytest.mark.parametrize("mode", list(AttentionMode))
def test_mask_matches_hand_written_matrix(mode: AttentionMode) -> None:
    mask = build_attention_mask(mode, num_queries=2, text_mask=TEXT_MASK)
    assert mask.shape == (1, 1, 5, 5)
    assert mask.dtype == torch.bool
    assert mask[0, 0].int().tolist() == EXPECTED[mode]


def test_mode_accepts_its_string_value() -> None:
    from_string = build_attention_mask("causal", num_queries=2, text_mask=TEXT_MASK)
    assert torch.equal(from_string, build_attention_mask(AttentionMode.CAUSAL, 2, TEXT_MASK))


def test_unknown_mode_is_rejected_with_the_choices() -> None:
    with pytest.raises(BridgeInputError, match="unimodal"):
        build_attention_mask("sideways", num_queries=2, text_mask=TEXT_MASK)


def test_text_only_causal_mask_is_lower_triangular() -> None:
    mask = build_attention_mask(AttentionMode.CAUSAL, num_queries=0, text_mask=torch.ones(1, 4))
    assert torch.equal(mask[0, 0], torch.tril(torch.ones(4, 4, dtype=torch.bool)))


def test_queries_only_mask_lets_queries_see_each_other() -> None:
    mask = build_attention_mask(AttentionMode.UNIMODAL, num_queries=3, text_mask=torch.ones(2, 0))
    assert mask.shape == (2, 1, 3, 3)
    assert bool(mask.all())


def test_additive_mask_gives_uniform_weights_to_a_row_with_nothing_visible() -> None:
    allowed = torch.tensor([[True, False], [False, False]])
    bias = additive_mask(allowed, torch.float32)
    assert bias[0, 0] == 0 and bias[0, 1] == torch.finfo(torch.float32).min
    weights = (torch.zeros(2, 2) + bias).softmax(dim=-1)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
