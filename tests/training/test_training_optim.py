from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mint.training.optim import parameter_groups, warmup_cosine


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.dense = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.queries = nn.Parameter(torch.zeros(1, 2, 4))


def test_groups_hold_exactly_the_trainable_parameters():
    model = Toy()
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(model.dense.weight)]
    expected_no_decay = {id(model.dense.bias), id(model.norm.weight), id(model.norm.bias), id(model.queries)}
    assert {id(p) for p in no_decay["params"]} == expected_no_decay
    frozen = {id(p) for p in model.frozen.parameters()}
    assert not frozen & {id(p) for group in (decay, no_decay) for p in group["params"]}


@pytest.mark.parametrize("step", [0, 4, 9, 10, 37, 55, 100, 150])
def test_warmup_cosine_matches_the_formula(step):
    warmup, total, floor = 10, 100, 0.1
    if step < warmup:
        expected = (step + 1) / warmup
    else:
        progress = min(1.0, (step - warmup) / (total - warmup))
        expected = floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2
    assert warmup_cosine(step, warmup, total, floor) == pytest.approx(expected)
    assert floor - 1e-12 <= warmup_cosine(step, warmup, total, floor) <= 1.0
