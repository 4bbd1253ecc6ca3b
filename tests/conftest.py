"""Test-wide settings: offline Hugging Face, deterministic torch seed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from mint_testing import require_java

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    """A seeded RNG for every test; the thread count and deterministic kernels a training run set
    (`mint.training.runtime.configure_torch`) do not leak into the next test."""
    torch.manual_seed(0)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for a whole module (`pytestmark = pytest.mark.usefixtures("single_thread")`, and
    requested by module-scoped fixtures that train): tiny models run fastest on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def java() -> None:
    """For tests of the caption metrics, whose PTB tokenizer and METEOR run on Java (`usefixtures("java")`)."""
    require_java()
