"""Helpers shared by the reliability tests: running `mint` as a real process, writing audio files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[2]


def mint_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mint.cli.main", *args]


def mint_env() -> dict[str, str]:
    """The environment of a `mint` child process: this checkout's sources, no network."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_mint(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `mint ARGS` in a fresh interpreter from the repository root; output is captured as text."""
    return subprocess.run(
        mint_command(*args),
        cwd=REPO,
        env=mint_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A refusal: non-zero exit, no Python traceback, and every fragment named on stderr."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in stderr:\n{result.stderr}"
    return result.stderr


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A sine of `freq` Hz, `[frames, channels]` float32, each channel at a different amplitude."""
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def write_ramp(path: Path, seconds: int, rate: int, fmt: str = "WAV", chunk_seconds: int = 60) -> Path:
    """A 16-bit mono file whose frame n holds the integer n mod 65536 (wrapped to int16), in chunks.

    The file can be hours long without ever holding more than one chunk in memory, and any window
    of it says where it came from: consecutive samples differ by exactly one step.
    """
    chunk = rate * chunk_seconds
    with sf.SoundFile(path, "w", rate, 1, format=fmt, subtype="PCM_16") as handle:
        for start in range(0, seconds * rate, chunk):
            frames = np.arange(start, min(start + chunk, seconds * rate), dtype=np.int64)
            handle.write((frames % 65536).astype(np.uint16).view(np.int16))
    return path


class Points(Dataset):
    """A small regression task for driving the real Trainer: item (epoch, index) -> (x, y)."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(7)
        self.x = torch.randn(40, 4, generator=generator)
        weights = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.y = self.x @ weights + 0.1 * torch.randn(40, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[key[1]], self.y[key[1]]


def collate_points(items: list) -> dict:
    return {"x": torch.stack([x for x, _ in items]), "y": torch.stack([y for _, y in items])}


def small_net(seed: int = 0) -> nn.Module:
    """A two-layer net with dropout, so that a resume must also restore the RNG to match."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))


def mse(model: nn.Module, batch: dict) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])
