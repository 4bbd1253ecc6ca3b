"""AdamW parameter groups and the warmup + cosine learning-rate schedule (a pure function)."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters that get no weight decay: norms, biases, the learnable queries and the temperature.
_NO_DECAY_MARKERS = ("norm", "LayerNorm", "layer_norm", "bias", "queries", "temperature")


def uses_weight_decay(name: str, parameter: torch.Tensor) -> bool:
    if parameter.ndim < 2:
        return False
    return not any(marker in name for marker in _NO_DECAY_MARKERS)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups of the trainable parameters; frozen ones are left out entirely."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (decay if uses_weight_decay(name, parameter) else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup from 0 to 1, then cosine decay to `min_ratio` at `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
