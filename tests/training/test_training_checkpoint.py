from __future__ import annotations

import errno
import random

import numpy as np
import pytest
import torch
from torch import nn

from mint.errors import CheckpointError
from mint.training import checkpoint as ckpt
from mint.training.optim import parameter_groups


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, steps: int) -> None:
    for _ in range(steps):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_round_trip_restores_everything_and_continues_identically(tmp_path):
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, 3)
    path = ckpt.save_checkpoint(tmp_path, 3, _weights(model), optimizer, scheduler, {"note": 1}, keep_last=2)
    np_draw, py_draw = np.random.rand(), random.random()
    _train(model, optimizer, scheduler, 2)
    expected = _weights(model)

    fresh, fresh_opt, fresh_sched = _setup(seed=99)
    weights, state = ckpt.load_checkpoint(path, fresh_opt, fresh_sched)
    fresh.load_state_dict(weights)
    assert state == {"step": 3, "note": 1}
    assert np.random.rand() == np_draw and random.random() == py_draw
    _train(fresh, fresh_opt, fresh_sched, 2)
    for name, tensor in _weights(fresh).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    assert fresh_sched.get_last_lr() == scheduler.get_last_lr()


def test_only_safetensors_and_json_are_written(tmp_path):
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, 1)
    path = ckpt.save_checkpoint(tmp_path, 1, _weights(model), optimizer, scheduler, {}, keep_last=1)
    assert sorted(p.suffix for p in path.iterdir()) == [
        ".json",
        ".json",
        ".safetensors",
        ".safetensors",
        ".safetensors",
    ]


def test_keep_last_and_order(tmp_path):
    model, optimizer, scheduler = _setup()
    for step in (1, 2, 10, 11):
        ckpt.save_checkpoint(tmp_path, step, _weights(model), optimizer, scheduler, {}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000000010", "step-000000011"]


def test_corrupted_checkpoint_is_refused_and_skipped(tmp_path):
    model, optimizer, scheduler = _setup()
    ckpt.save_checkpoint(tmp_path, 1, _weights(model), optimizer, scheduler, {}, keep_last=3)
    newest = ckpt.save_checkpoint(tmp_path, 2, _weights(model), optimizer, scheduler, {}, keep_last=3)
    data = bytearray((newest / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        ckpt.load_checkpoint(newest, optimizer, scheduler)
    assert ckpt.latest_valid_checkpoint(tmp_path).name == "step-000000001"


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, optimizer, scheduler = _setup()
    good = ckpt.save_checkpoint(tmp_path, 1, _weights(model), optimizer, scheduler, {}, keep_last=1)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", disk_full)
    _train(model, optimizer, scheduler, 1)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(tmp_path, 2, _weights(model), optimizer, scheduler, {}, keep_last=1)
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000001"]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert ckpt.latest_valid_checkpoint(tmp_path) == good
