"""Peak memory of `mint caption`, `mint ask` and `mint locate` on long recordings: it must not grow with
the recording's length (`model.windowing` reads one batch of windows at a time).

    .venv/bin/python scripts/long_audio_memory.py --minutes 6 60

The model is configs/instruct/tiny.yaml as built (Whisper tiny.en encoder from the weights cache, a fresh
Bridge-Net, the random T5 LLM): the figures are memory and time, not caption quality. Each recording is
16 kHz noise with a 1 kHz tone for two seconds at 47:00 (or at 80 % of a shorter one). Each command runs
in its own process; its peak RSS is that process's `ru_maxrss`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
_MEASURE = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def _model(folder: Path) -> Path:
    import torch

    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.training.config import InstructConfig

    config = load_config(InstructConfig, REPO / "configs/instruct/tiny.yaml")
    torch.manual_seed(0)
    return MintModel.from_config(config.model).save_pretrained(folder)


def _recording(path: Path, minutes: float) -> float:
    """Write the recording a minute at a time; returns where its tone starts (seconds)."""
    seconds = minutes * 60
    tone_at = 47 * 60.0 if seconds > 48 * 60 else 0.8 * seconds
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as handle:
        for start in range(0, int(seconds), 60):
            part = 0.05 * rng.standard_normal(int(min(60, seconds - start) * RATE))
            times = start + np.arange(len(part)) / RATE
            part += np.where(
                (times >= tone_at) & (times < tone_at + 2), 0.5 * np.sin(2 * np.pi * 1000 * times), 0
            )
            handle.write(part.astype(np.float32))
    return tone_at


def _peak(command: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB, seconds) of one command in its own process."""
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True
    )
    return int(result.stdout.split()[-1]) / 2**20, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[6, 60])
    args = parser.parse_args()
    mint = str(Path(sys.executable).with_name("mint"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mint-long-") as tmp:
        model = str(_model(Path(tmp) / "model"))
        for minutes in args.minutes:
            path = Path(tmp) / f"{minutes:g}min.wav"
            tone_at = _recording(path, minutes)
            row = {
                "minutes": minutes,
                "file_MiB": round(path.stat().st_size / 2**20, 1),
                "tone_at_s": tone_at,
            }
            for name, command in (
                ("caption", [mint, "caption", str(path), "--model", model, "--max-new-tokens", "8"]),
                ("ask", [mint, "ask", str(path), "what do you hear at minute 47?", "--model", model]),
                ("locate", [mint, "locate", str(path), "a beep", "--model", model, "--top", "1"]),
            ):
                gib, seconds = _peak(command)
                row[f"{name}_peak_rss_GiB"] = round(gib, 3)
                row[f"{name}_s"] = round(seconds, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
