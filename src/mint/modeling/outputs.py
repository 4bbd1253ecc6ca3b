"""Small containers passed between the model, its objectives and the trainer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AudioFeatures:
    """Frozen-encoder output after the trainable LayerNorm."""

    features: torch.Tensor  # [B, T, Da]
    mask: torch.Tensor  # [B, T] bool, True = real frame


@dataclass
class Stage1Output:
    loss: torch.Tensor  # weighted sum of the three objectives
    loss_atc: torch.Tensor
    loss_atm: torch.Tensor
    loss_atg: torch.Tensor
    temperature: torch.Tensor


@dataclass
class InstructOutput:
    loss: torch.Tensor  # mean negative log-likelihood of the response tokens (+ end-of-sequence)
