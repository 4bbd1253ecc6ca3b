"""Stage 2 fully sharded (FSDP2) over two CPU processes trains, checkpoints and resumes like one process.

The real entry point runs under `accelerate launch --config_file configs/accelerate/fsdp.yaml
--num_processes 2` (gloo on CPU; mint shards the model itself, the random T5's blocks included).
`max_response_length=2` cuts every response to one token plus the end-of-sequence token, so both
halves of a batch hold as many loss tokens and the comparison does not depend on how the stage-2
loss weighs tokens across processes. The single-process run is plain (unsharded) training, the
independent reference for the losses, the checkpoint files and the saved model. Two micro-batches
per step exercise the gradient accumulation without reduce-scatter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mint.cli.main import main
from mint.modeling import MintModel
from mint_testing import cpu_launch_env, tiny_instruct_overrides

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "instruct" / "tiny.yaml")
STEPS = 3
FIRST_CHECKPOINT = "step-000000002"
# Adam's first steps divide by the root of a tiny second moment where a gradient is near zero, which
# magnifies rounding: such weights may differ by a few percent of one step (lr 2e-3). The optimizer's
# moments, which follow the gradients linearly, are compared 50 times tighter.
WEIGHT_ATOL = 5e-5


def _overrides(output_dir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    batching = ("model.llm.max_response_length=2", "trainer.save_every=2", "trainer.grad_accum_steps=2")
    return tiny_instruct_overrides(output_dir, STEPS, extra=(*batching, *extra))


def _launch_fsdp(output_dir: Path, extra: tuple[str, ...] = ()) -> None:
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "fsdp.yaml"),
        "--num_processes",
        "2",
        "-m",
        "mint.cli.main",
        "instruct",
        CONFIG,
        *_overrides(output_dir, extra),
    ]
    try:
        result = subprocess.run(
            command, env=cpu_launch_env(), capture_output=True, text=True, timeout=150, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the two-process FSDP run did not finish within 150 s")
    assert result.returncode == 0, result.stderr[-3000:]


def _records(output_dir: Path) -> list[dict]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k in ("step", "loss", "lr")} for line in lines]


def _assert_tensors_close(actual: dict, expected: dict, rtol: float, atol: float) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=rtol, atol=atol, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, single_thread) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fsdp")
    sharded, plain = root / "fsdp", root / "one"
    _launch_fsdp(sharded)
    assert main(["instruct", CONFIG, *_overrides(plain)]) == 0
    return {"fsdp": sharded, "one": plain, "root": root}


def test_fsdp_logs_the_losses_and_writes_the_checkpoints_of_one_process(runs):
    sharded, plain = runs["fsdp"], runs["one"]
    assert [r["step"] for r in _records(sharded)] == list(range(1, STEPS + 1))
    for a, b in zip(_records(plain), _records(sharded), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-5, abs=2e-6), f"step {a['step']}"
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12)

    # The checkpoint holds whole tensors, keyed as without sharding: the optimizer's state covers
    # exactly the parameters the single process trains, in the same order and groups.
    one_ckpt, fsdp_ckpt = plain / "checkpoints" / FIRST_CHECKPOINT, sharded / "checkpoints" / FIRST_CHECKPOINT
    for name, atol in (("model.safetensors", WEIGHT_ATOL), ("optimizer.safetensors", 1e-6)):
        _assert_tensors_close(
            load_file(str(fsdp_ckpt / name)), load_file(str(one_ckpt / name)), rtol=1e-4, atol=atol
        )
    one_state = json.loads((one_ckpt / "trainer_state.json").read_text())
    fsdp_state = json.loads((fsdp_ckpt / "trainer_state.json").read_text())
    assert fsdp_state["optimizer"] == one_state["optimizer"]
    assert fsdp_state["scheduler"] == one_state["scheduler"]
    assert fsdp_state["step"] == 2


def test_fsdp_saved_model_loads_in_one_process_with_the_weights_of_one(runs):
    loaded = MintModel.from_pretrained(runs["fsdp"] / "model")
    expected = load_file(str(runs["one"] / "model" / "model.safetensors"))
    _assert_tensors_close(loaded.trainable_state_dict(), expected, rtol=1e-4, atol=WEIGHT_ATOL)


def test_fsdp_checkpoint_resumes_like_the_uninterrupted_run(runs):
    resumed = runs["root"] / "resumed"
    shutil.copytree(runs["fsdp"], resumed)
    shutil.rmtree(resumed / "checkpoints" / f"step-{STEPS:09d}")
    shutil.rmtree(resumed / "model")
    _launch_fsdp(resumed, ("resume=true",))

    assert _records(resumed) == _records(runs["fsdp"])
    final = load_file(str(resumed / "model" / "model.safetensors"))
    _assert_tensors_close(final, load_file(str(runs["fsdp"] / "model" / "model.safetensors")), rtol=0, atol=0)
    # The resumed step did change the weights it started from.
    start = load_file(str(resumed / "checkpoints" / FIRST_CHECKPOINT / "model.safetensors"))
    assert not torch.equal(final["llm_proj.weight"], start["llm_proj.weight"])
