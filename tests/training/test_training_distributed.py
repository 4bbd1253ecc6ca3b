"""Two CPU processes (gloo, launched by torchrun) train exactly like one process with the same global batch.

The real entry point runs in a subprocess: `python -m torch.distributed.run --standalone
--nproc_per_node 2 -m mint.cli.main pretrain ...`. Each rank sees half of every global batch; ATC
negatives are gathered with gradients, ATM hard negatives are drawn over the global batch, ATG is
normalised by the global token count, so the logged losses and the trained weights must equal those
of a single process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mint_testing import cpu_launch_env, read_jsonl, tiny_pretrain_overrides

STEPS = 3
LOSSES = ("loss", "loss_atc", "loss_atm", "loss_atg", "temperature", "lr")


def _torchrun_pretrain(processes: int, output_dir) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "mint.cli.main",
        "pretrain",
        "configs/pretrain/tiny.yaml",
        *tiny_pretrain_overrides(output_dir, steps=STEPS),
    ]
    try:
        result = subprocess.run(command, env=cpu_launch_env(), capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {processes}-process run did not finish within 150 s")
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_log_the_losses_and_train_the_weights_of_one(tmp_path):
    # Both runs on CPU, so that the comparison holds on a machine with a GPU too.
    single, double = tmp_path / "one", tmp_path / "two"
    _torchrun_pretrain(2, double)
    _torchrun_pretrain(1, single)

    one, two = read_jsonl(single / "metrics.jsonl"), read_jsonl(double / "metrics.jsonl")
    # Only rank 0 writes the log: one line per step.
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two, strict=True):
        for name in LOSSES:
            assert b[name] == pytest.approx(a[name], rel=2e-5, abs=2e-6), f"step {a['step']} {name}"

    weights_one = load_file(str(single / "model" / "model.safetensors"))
    weights_two = load_file(str(double / "model" / "model.safetensors"))
    assert weights_one.keys() == weights_two.keys()
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
