"""mint's CPU dropout: the keep rate, scaling, independence and gradient of an inverted dropout.

Statistical checks use n = 2^20 elements and allow 6 standard deviations of a binomial proportion
(sqrt(q (1 - q) / n) <= 0.0005): a correct mask fails them with probability below 1e-8, while a wrong
threshold (off by one 16-bit step is 1.5e-5, but off by a percent of p is 0.001), a lane reused across
elements or a mask left unscaled fails them at once.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from bridge_testing import random_inputs, tiny_bridge

from mint.bridge import AttentionMode
from mint.bridge.dropout import LANE_VALUES, Dropout, fast_dropout

N = 1 << 20


def _tolerance(rate: float, count: int = N) -> float:
    return 6 * math.sqrt(rate * (1 - rate) / count)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_elements_are_dropped_at_rate_p_and_the_rest_scaled_by_the_inverse_keep_rate(p):
    torch.manual_seed(0)
    hidden = torch.rand(N) + 0.5  # never zero, so a zero in the output is a dropped element
    out = fast_dropout(hidden, p, training=True)
    kept = out != 0
    dropped_lanes = round(p * LANE_VALUES)
    keep_rate = 1 - dropped_lanes / LANE_VALUES
    assert abs(kept.double().mean().item() - keep_rate) <= _tolerance(keep_rate)
    # Against the nominal p too: the 16-bit rounding of p moves the keep rate by at most 0.5 / 65536.
    assert abs(kept.double().mean().item() - (1 - p)) <= _tolerance(1 - p) + 0.5 / LANE_VALUES
    # Kept elements are the input times 1 / keep_rate, rounded once as torch rounds a scalar product.
    assert torch.equal(out[kept], hidden[kept] * (LANE_VALUES / (LANE_VALUES - dropped_lanes)))
    # So the output's mean is the input's (the expectation of inverted dropout). With hidden uniform on
    # [0.5, 1.5] (mean 1, mean square 13/12), one element of the output has variance 13/12 / keep_rate - 1.
    spread = math.sqrt((13 / 12 / keep_rate - 1) / N)
    assert abs(out.double().mean().item() - 1) <= 6 * spread + 6 * math.sqrt(1 / 12 / N)


def test_neighbouring_elements_which_share_a_random_draw_are_independent():
    torch.manual_seed(1)
    kept = fast_dropout(torch.ones(N), 0.5, training=True) != 0
    # Elements 4j .. 4j+3 take their lanes from one 64-bit draw: every pair of lanes must be independent.
    lanes = kept.view(-1, 4).double()
    for first in range(4):
        for second in range(first + 1, 4):
            both = (lanes[:, first] * lanes[:, second]).mean().item()
            assert abs(both - 0.25) <= _tolerance(0.25, N // 4), (first, second)
    # And consecutive draws too.
    across = (lanes[:-1, 3] * lanes[1:, 0]).mean().item()
    assert abs(across - 0.25) <= _tolerance(0.25, N // 4)


def test_the_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(2)
    hidden = torch.randn(64, 96, dtype=torch.float64, requires_grad=True)
    out = fast_dropout(hidden, 0.3, training=True)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    scale = LANE_VALUES / (LANE_VALUES - round(0.3 * LANE_VALUES))
    torch.testing.assert_close(hidden.grad, upstream * (out != 0) * scale, rtol=0, atol=0)


def test_masks_follow_the_seed_and_eval_or_p_zero_is_the_identity():
    hidden = torch.randn(1000)
    torch.manual_seed(7)
    first = fast_dropout(hidden, 0.2, training=True)
    torch.manual_seed(7)
    assert torch.equal(fast_dropout(hidden, 0.2, training=True), first)
    assert not torch.equal(fast_dropout(hidden, 0.2, training=True), first)
    assert fast_dropout(hidden, 0.2, training=False) is hidden
    assert fast_dropout(hidden, 0.0, training=True) is hidden
    module = Dropout(0.2).eval()
    assert module(hidden) is hidden and "p=0.2" in repr(module)


def test_bf16_inputs_keep_their_dtype_and_an_accurate_scale():
    torch.manual_seed(3)
    hidden = torch.ones(4096, dtype=torch.bfloat16)
    out = fast_dropout(hidden, 0.1, training=True)
    assert out.dtype == torch.bfloat16
    # 1 / 0.9 rounded once to bf16, as torch's dropout gives it (not the bf16 scale times 1).
    assert set(out.unique().tolist()) == {0.0, torch.tensor(1 / (1 - 6554 / LANE_VALUES)).bfloat16().item()}


def test_a_training_bridge_on_the_cpu_never_calls_torchs_dropout(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch's dropout was called")

    monkeypatch.setattr(F, "dropout", refuse)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", _no_dropout_sdpa(F))
    for implementation in ("sdpa", "eager"):
        bridge = tiny_bridge(dropout=0.1, attention_dropout=0.1, attn_implementation=implementation).train()
        out = bridge(*random_inputs(), mode=AttentionMode.CAUSAL)
        out.query_output.sum().backward()


def _no_dropout_sdpa(functional):
    original = functional.scaled_dot_product_attention

    def sdpa(*args, dropout_p: float = 0.0, **kwargs):
        assert dropout_p == 0.0, "attention dropout went to SDPA's own mask"
        return original(*args, dropout_p=dropout_p, **kwargs)

    return sdpa
