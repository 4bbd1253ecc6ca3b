"""`trainer.deterministic` and `trainer.num_threads`: what they set, and two runs that agree bit for bit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mint.errors import ConfigError
from mint.training.config import TrainerConfig
from mint.training.runtime import configure_torch, default_threads, usable_cores


def test_configure_torch_sets_threads_and_ordered_kernels():  # conftest restores both afterwards
    assert configure_torch(TrainerConfig(num_threads=1, deterministic=True)) == 1
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    configure_torch(TrainerConfig(num_threads=2))
    assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()


def test_default_threads_share_the_cores_among_local_processes(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == usable_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * usable_cores()))
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    assert default_threads() == 3


def test_thread_count_must_be_positive():
    with pytest.raises(ConfigError, match=r"trainer\.num_threads"):
        TrainerConfig(num_threads=0)


def test_deterministic_runs_in_parallel_processes_write_identical_logs_and_weights(tmp_path):
    """Two runs at once, each on 2 threads of a 2-core machine: without ordered kernels, the backward of
    the ATM negatives' indexing adds rows in whatever order the contended threads finish, and such runs
    were seen to part from the first step."""
    runs = [tmp_path / "a", tmp_path / "b"]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mint.cli.main",
                "pretrain",
                "configs/pretrain/tiny.yaml",
                f"output_dir={run}",
                "trainer.max_steps=10",
                "trainer.save_every=10",
                "trainer.progress_bar=false",
                "--deterministic",
                "--threads",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
    a, b = runs
    assert len((a / "metrics.jsonl").read_text().splitlines()) == 10
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    assert (a / "model" / "model.safetensors").read_bytes() == (
        b / "model" / "model.safetensors"
    ).read_bytes()


def test_one_process_builds_accelerators_of_different_precisions_in_turn():
    # `mint demo` trains stage 1 and stage 2 in one process; accelerate alone refuses a second precision.
    from mint.training.trainer import build_accelerator

    assert build_accelerator("bf16").mixed_precision == "bf16"
    assert build_accelerator("fp32").mixed_precision == "no"
    assert build_accelerator("bf16").mixed_precision == "bf16"
