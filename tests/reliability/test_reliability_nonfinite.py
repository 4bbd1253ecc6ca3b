"""NaN and infinite losses: the real Trainer skips those steps, counts them, and stops after too many.

The loss function is an ordinary one multiplied by NaN or inf on chosen steps, so the gradients of
those steps are non-finite too: a step that was not really skipped would poison the weights.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from reliability_support import Points, collate_points, mse, small_net

from mint.cli.main import main
from mint.errors import MintError
from mint.training.config import TrainerConfig
from mint.training.trainer import NonFiniteLossError, Trainer
from mint_testing import tiny_pretrain_overrides


class PoisonedLoss:
    """MSE, times `poison[step]` on the chosen steps; records the weights each step starts from."""

    def __init__(self, poison: dict[int, float], grad_accum_steps: int = 1) -> None:
        self.poison = poison
        self.grad_accum_steps = grad_accum_steps
        self.calls = 0
        self.weights_before: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, model: torch.nn.Module, batch: dict, generator: torch.Generator):
        step = self.calls // self.grad_accum_steps + 1
        self.calls += 1
        self.weights_before.setdefault(step, {k: v.detach().clone() for k, v in model.state_dict().items()})
        loss = mse(model, batch)
        # Poisoning the last micro-batch only: one bad micro-batch must spoil its whole step.
        if step in self.poison and self.calls % self.grad_accum_steps == 0:
            loss = loss * self.poison[step]
        return loss, {}


def trainer_for(out: Path, loss: PoisonedLoss, **settings: object) -> Trainer:
    config = TrainerConfig(
        **{
            "batch_size": 4,
            "lr": 1e-2,
            "warmup_steps": 0,
            "log_every": 1,
            "progress_bar": False,
            "grad_accum_steps": loss.grad_accum_steps,
            **settings,
        }
    )
    return Trainer(small_net(), config, out, Points(), collate_points, loss, lambda m: m.state_dict())


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("grad_accum_steps", [1, 2])
def test_nonfinite_steps_are_skipped_and_counted(grad_accum_steps: int, tmp_path: Path) -> None:
    bad = {2: math.nan, 4: math.inf, 5: -math.inf}
    loss = PoisonedLoss(bad, grad_accum_steps)
    trainer = trainer_for(tmp_path, loss, max_steps=7, save_every=7, max_nonfinite_steps=3)
    result = trainer.fit()
    assert result.final_step == 7 and result.skipped_nonfinite == 3
    final = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    after = {**{step: loss.weights_before[step + 1] for step in range(1, 7)}, 7: final}
    for step in range(1, 8):
        unchanged = same(loss.weights_before[step], after[step])
        assert unchanged == (step in bad), f"step {step}: weights {'un' if unchanged else ''}changed"
    assert all(torch.isfinite(tensor).all() for tensor in final.values())
    # The optimizer took only the good steps: Adam's step count and bias correction ignore the rest.
    adam_steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert adam_steps == {7 - len(bad)}
    saved = json.loads((tmp_path / "checkpoints" / "step-000000007" / "trainer_state.json").read_text())
    assert saved["trainer"]["skipped_nonfinite"] == 3


def test_the_count_survives_a_resume(tmp_path: Path) -> None:
    trainer_for(tmp_path, PoisonedLoss({2: math.nan}), max_steps=4, save_every=2).fit()
    last = tmp_path / "checkpoints" / "step-000000004"
    shutil.rmtree(last)  # as if killed after the checkpoint of step 2
    resumed = trainer_for(tmp_path, PoisonedLoss({}), max_steps=4, save_every=2).fit(resume=True)
    assert resumed.final_step == 4 and resumed.skipped_nonfinite == 1
    shutil.rmtree(last)
    # PoisonedLoss counts from the resumed run's first step (step 3): one more NaN step exceeds a
    # limit of one only if the NaN step before the checkpoint still counts.
    late = trainer_for(
        tmp_path, PoisonedLoss({1: math.nan}), max_steps=4, save_every=2, max_nonfinite_steps=1
    )
    with pytest.raises(NonFiniteLossError, match="2 steps had a NaN/inf loss"):
        late.fit(resume=True)


def test_too_many_nonfinite_steps_stop_the_run_with_a_clear_error(tmp_path: Path) -> None:
    loss = PoisonedLoss({step: math.nan for step in range(2, 10)})
    trainer = trainer_for(tmp_path, loss, max_steps=9, save_every=1, max_nonfinite_steps=2)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    assert isinstance(info.value, MintError)
    assert "3 steps had a NaN/inf loss (trainer.max_nonfinite_steps=2)" in str(info.value)
    assert loss.calls == 4  # steps 2 and 3 were skipped, step 4 was one too many
    logged = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]
    assert same(loss.weights_before[2], loss.weights_before[4])


def test_a_diverging_pretrain_run_stops_with_one_clean_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """lr=1e30 turns the weights to ~1e30 after one step; everything after that is inf or NaN."""
    overrides = [
        *tiny_pretrain_overrides(tmp_path, steps=3),
        "trainer.lr=1e30",
        "trainer.warmup_steps=0",
        "trainer.max_nonfinite_steps=0",
    ]
    assert main(["pretrain", "configs/pretrain/tiny.yaml", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mint pretrain: error:"), err
    assert re.search(r"NaN|finite", err), err
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in logged] == [1] and math.isfinite(logged[0]["loss"])
