"""Tiny randomly initialised Hugging Face checkpoints, saved to temporary directories and loaded offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from encoders_checkpoints import BUILDERS


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`make_checkpoint(kind, seed=0, variant="", path=None)` saves a tiny model + extractor, returns its dir."""

    cache: dict[tuple[str, int, str], Path] = {}

    def make(kind: str, seed: int = 0, variant: str = "", path: Path | None = None) -> Path:
        key = (kind, seed, variant)
        if path is None and key in cache:
            return cache[key]
        target = path or tmp_path_factory.mktemp(f"{kind}-{seed}-{variant or 'plain'}")
        torch.manual_seed(seed)
        model, extractor = BUILDERS[kind](variant)
        model.save_pretrained(target)
        extractor.save_pretrained(target)
        if path is None:
            cache[key] = target
        return target

    return make
