"""Dropout whose random mask is cheaper to draw on the CPU.

torch's CPU dropout draws one Bernoulli sample per element from its Mersenne Twister, which at the
Bridge-Net's shapes costs more than the arithmetic it masks (15 % of a bf16 stage-1 step at paper scale in
`make bench`'s profile). Here one 64-bit draw of the same generator gives four 16-bit lanes, and an element
is kept when its lane is at or above p's 16-bit threshold: three times faster, with p applied to within
1/65536 (0.1 becomes 6554/65536) and kept elements scaled by the inverse of the keep rate actually used, so
the output's expectation is the input, as with torch's dropout. Masks come from torch's default generator:
`torch.manual_seed` fixes them, and activation checkpointing, which saves and restores that generator,
recomputes the same ones. On other devices torch's own (fused) dropout runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANE_VALUES = 1 << 16
LANES_PER_DRAW = 4  # 16-bit lanes in one int64 draw
_INT64 = torch.iinfo(torch.int64)


def fast_dropout(hidden: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element of `hidden` with probability `p` (to 1/65536) and scale the rest to keep the mean."""
    if not training or p == 0.0:
        return hidden
    if hidden.device.type != "cpu":
        return F.dropout(hidden, p, training)
    dropped = round(p * LANE_VALUES)
    count = hidden.numel()
    draws = torch.randint(_INT64.min, _INT64.max, ((count + LANES_PER_DRAW - 1) // LANES_PER_DRAW,))
    lanes = draws.view(torch.int16)[:count].view(hidden.shape)
    # int16 lanes are uniform over [-32768, 32767]: `dropped` of the 65536 values lie below the threshold.
    keep = lanes >= dropped - LANE_VALUES // 2
    return hidden * keep * (LANE_VALUES / (LANE_VALUES - dropped))


class Dropout(nn.Module):
    """`nn.Dropout` with the mask of `fast_dropout`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return fast_dropout(hidden, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
