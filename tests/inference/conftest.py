"""Tiny saved models (stage 1, and stage 2 with the in-memory `random:t5` LLM) and a few generated
clips, built once for the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mint_testing
from mint.data.synth import SynthSpec, generate_corpus


def save_tiny_model(folder: Path, llm: bool) -> Path:
    return mint_testing.save_tiny_model(folder, llm, seed=3)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Tiny models run fastest on one thread; more only contend on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def stage2_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("inference-stage2") / "model", llm=True)


@pytest.fixture(scope="session")
def stage1_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("inference-stage1") / "model", llm=False)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list[Path]:
    """Six 1.5 s WAV clips at 16 kHz (the tiny model's rate and clip length), sorted by name."""
    folder = tmp_path_factory.mktemp("inference-clips")
    generate_corpus(SynthSpec(num_clips=6, seed=4, clip_seconds=1.5, max_events=1), folder, 1, {"test": 1.0})
    return sorted((folder / "audio").glob("*.wav"))
