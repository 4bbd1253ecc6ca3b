"""A tiny stage-2 model (in-memory `random:t5` LLM), a few generated clips and their index, built once
for the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mint_testing
from mint.data.synth import SynthSpec, generate_corpus
from mint.inference import MintPipeline, build_index


def save_tiny_model(folder: Path, llm: bool) -> Path:
    return mint_testing.save_tiny_model(folder, llm, seed=5)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("serving-model") / "model", llm=True)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """Four 1.5 s WAV clips at 16 kHz."""
    folder = tmp_path_factory.mktemp("serving-clips")
    generate_corpus(SynthSpec(num_clips=4, seed=7, clip_seconds=1.5, max_events=1), folder, 1, {"test": 1.0})
    return folder / "audio"


@pytest.fixture(scope="session")
def pipeline(model_dir) -> MintPipeline:
    return MintPipeline.from_pretrained(model_dir, batch_size=4)


@pytest.fixture(scope="session")
def stage1_pipeline(tmp_path_factory) -> MintPipeline:
    return MintPipeline.from_pretrained(
        save_tiny_model(tmp_path_factory.mktemp("serving-stage1") / "model", llm=False)
    )


@pytest.fixture(scope="session")
def index_path(pipeline, audio_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serving-index") / "index.sqlite"
    build_index(pipeline, audio_dir, path, workers=0, progress=False)
    return path
