"""Two CPU processes (gloo, launched by torchrun) train exactly like one process with the same global batch.

The real stage-1 run goes through `torchrun` in a subprocess (`gradient_probe.py`, which also saves the
first step's gradients). Each rank sees half of every global batch; ATC negatives are gathered with
gradients, ATM hard negatives are drawn over the global batch, ATG is normalised by the global token
count, and DDP averages the gradients: so the first step's gradients of every trainable tensor, and the
losses logged at every step, must equal those of one process up to fp32 rounding.

Weights after a few AdamW steps are not compared: AdamW's first steps move each weight by about
lr * sign(gradient), so an element whose gradient is rounding noise (a key bias, whose exact gradient is
zero) takes a sign that depends on the summation order.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mint_testing import cpu_launch_env, gradient_mismatches, read_jsonl, tiny_pretrain_overrides

STEPS = 3
LOSSES = ("loss", "loss_atc", "loss_atm", "loss_atg", "temperature", "lr")
PROBE = Path(__file__).with_name("gradient_probe.py")


def _torchrun(processes: int, output_dir: Path, breakage: str = "none", steps: int = STEPS) -> Path:
    overrides = [
        item
        for item in tiny_pretrain_overrides(output_dir, steps=steps)
        if not item.startswith("output_dir=")
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        str(PROBE),
        breakage,
        str(output_dir),
        *overrides,
    ]
    try:
        result = subprocess.run(command, env=cpu_launch_env(), capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {processes}-process run did not finish within 150 s")
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


def loss_mismatches(got: list[dict], want: list[dict]) -> list[str]:
    assert [r["step"] for r in got] == [r["step"] for r in want]
    return [
        f"step {a['step']} {name}: {b[name]} vs {a[name]}"
        for a, b in zip(want, got, strict=True)
        for name in LOSSES
        if b[name] != pytest.approx(a[name], rel=2e-5, abs=2e-6)
    ]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    return _torchrun(1, tmp_path_factory.mktemp("one"))


def _gradients(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "grads.pt")


def test_two_processes_compute_the_gradients_and_losses_of_one(one_process, tmp_path):
    two = _torchrun(2, tmp_path / "two")
    # Only rank 0 writes the log: one line per step.
    assert [r["step"] for r in read_jsonl(two / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert loss_mismatches(read_jsonl(two / "metrics.jsonl"), read_jsonl(one_process / "metrics.jsonl")) == []
    gradients = _gradients(two)
    assert len(gradients) > 20  # every trainable tensor of the Bridge-Net and heads
    assert gradient_mismatches(gradients, _gradients(one_process)) == {}


@pytest.mark.parametrize("breakage", ["no-allreduce", "local-loss"])
def test_the_comparison_fails_when_distributed_training_is_broken(one_process, tmp_path, breakage):
    broken = _torchrun(2, tmp_path / breakage, breakage, steps=1)
    mismatches = gradient_mismatches(_gradients(broken), _gradients(one_process))
    assert len(mismatches) > 10 and max(mismatches.values()) > 100, mismatches
    if breakage == "local-loss":  # the forward changes too: fewer in-batch negatives, local token means
        losses = loss_mismatches(
            read_jsonl(broken / "metrics.jsonl"), read_jsonl(one_process / "metrics.jsonl")[:1]
        )
        assert any("loss_atc" in line for line in losses)
