"""Fixtures of the real-weights tests: the converted weights, from the cache `make test` fills (converted
here on first use otherwise), and offline Hugging Face."""

from __future__ import annotations

from pathlib import Path

import pytest
from weights_testing import require_weights

from mint.weights import prepare_named


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """Whisper tiny.en converted to a Hugging Face directory."""
    return prepare_named(require_weights("whisper-tiny.en"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct dequantised to a Hugging Face directory."""
    return prepare_named(require_weights("smollm2-135m-instruct"))
