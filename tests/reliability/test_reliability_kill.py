"""SIGKILL a real `mint pretrain` process twice, resume, and compare with an uninterrupted run.

The first kill lands while checkpoint 4 is being assembled (a `.partial-*` folder is on disk), the
second at a random moment (0-1.5 s) into the run that resumed from the surviving checkpoint. After
each kill every listed checkpoint must pass its digest check; the final resumed run must log exactly
the losses of an uninterrupted run and save exactly its weights. Every write boundary is covered
deterministically by test_reliability_crash_points.py; this test shows the same with a real process.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from reliability_support import REPO, mint_command, mint_env
from safetensors.torch import load_file

from mint.config import load_config
from mint.errors import CheckpointError
from mint.modeling import MintModel
from mint.storage import verify_digests
from mint.training.checkpoint import list_checkpoints
from mint.training.config import PretrainConfig
from mint.training.pretrain import run_pretraining
from mint_testing import tiny_pretrain_overrides

STEPS = 6


def overrides(out: Path) -> list[str]:
    return [
        *tiny_pretrain_overrides(out, steps=STEPS),
        "trainer.save_every=2",
        "trainer.keep_last=2",
        "model.bridge.dropout=0.1",  # dropout draws from the RNG, whose state a resume must restore
        # Ordered kernels on one thread in every process: an exact resume then matches bit for bit.
        "trainer.deterministic=true",
        "trainer.num_threads=1",
        "resume=true",
    ]


def losses(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def kill_when(out: Path, log: Path, trigger: Callable[[], bool], timeout: float = 240) -> bool:
    """Run `mint pretrain`, SIGKILL it once `trigger()` holds; False if it finished first."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            mint_command("pretrain", "configs/pretrain/tiny.yaml", *overrides(out)),
            cwd=REPO,
            env=mint_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                if trigger():
                    process.send_signal(signal.SIGKILL)
                    assert process.wait() == -signal.SIGKILL
                    return True
                time.sleep(0.002)
            assert process.returncode == 0, log.read_text()
            return False
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def check_checkpoints(out: Path, moment: str) -> list[int]:
    """The steps of the listed checkpoints; fails if any of them does not match its digests."""
    listed = list_checkpoints(out / "checkpoints")
    for path in listed:
        try:
            verify_digests(path)
        except CheckpointError as error:
            pytest.fail(f"killed {moment}: {error}")
    return [int(path.name.split("-")[1]) for path in listed]


def test_sigkill_then_resume_logs_the_losses_of_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    run_pretraining(load_config(PretrainConfig, "configs/pretrain/tiny.yaml", overrides(straight)))

    out = tmp_path / "killed"
    checkpoints, metrics = out / "checkpoints", out / "metrics.jsonl"
    delay = random.Random().uniform(0.0, 1.5)

    def writing_the_second_checkpoint() -> bool:
        return (checkpoints / "step-000000002").is_dir() and any(checkpoints.glob(".partial-*"))

    def training_again(started: float) -> Callable[[], bool]:
        """True `delay` seconds after the resumed process first rewrote metrics.jsonl (on resuming)."""
        rewritten: list[float] = []

        def trigger() -> bool:
            if not rewritten and metrics.is_file() and metrics.stat().st_mtime >= started:
                rewritten.append(time.monotonic())
            return bool(rewritten) and time.monotonic() - rewritten[0] >= delay

        return trigger

    killed = []
    if kill_when(out, tmp_path / "first.txt", writing_the_second_checkpoint):
        killed.append("while checkpoint 4 was written")
    check_checkpoints(out, "while checkpoint 4 was written")
    if kill_when(out, tmp_path / "second.txt", training_again(time.time())):
        killed.append(f"{delay:.2f} s into the resumed run")
    check_checkpoints(out, f"{delay:.2f} s into the resumed run")
    assert killed, "both runs finished before their kill moment"

    resumed = run_pretraining(load_config(PretrainConfig, "configs/pretrain/tiny.yaml", overrides(out)))
    assert resumed.final_step == STEPS
    assert check_checkpoints(out, "after the resume") == [4, 6]
    assert losses(out) == losses(straight), f"killed {killed}"
    expected = load_file(str(straight / "model" / "model.safetensors"))
    for name, tensor in load_file(str(out / "model" / "model.safetensors")).items():
        assert torch.equal(tensor, expected[name]), f"{name} (killed {killed})"
    MintModel.from_pretrained(out / "model")
