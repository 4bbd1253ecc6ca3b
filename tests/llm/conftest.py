"""Fixtures of the LLM adapter tests: offline Hugging Face, one CPU thread, tiny checkpoints on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from llm_testing import save_tiny


@pytest.fixture(scope="module", autouse=True)
def offline_single_thread() -> Iterator[None]:
    # Tiny models run fastest on one thread, and nothing here may reach the hub. Module scope, so that
    # module-scoped training fixtures run under it too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("llm")
    return {name: save_tiny(name, folder) for name in ("t5", "llama", "gpt2")}
