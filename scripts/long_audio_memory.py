"""Peak memory of `mint caption`, `mint ask` and `mint locate` on long recordings: it must not grow with
the recording's length (`model.windowing` reads one batch of windows at a time); and what each says about
a siren placed at minute 47.

    .venv/bin/python scripts/long_audio_memory.py --minutes 6 60 [--model DIR]

Without `--model`, the model is configs/instruct/tiny.yaml as built (Whisper tiny.en encoder from the
weights cache, a fresh Bridge-Net, the random T5 LLM): the figures are then memory and time, not answers.
Each recording is pink noise with a generated event of another kind every 1-3 minutes and one loud siren
at 47:00 (at 80 % of a shorter one), written by `mint.data.synth.long_scenes`. Each command runs in its
own process; its peak RSS is that process's `ru_maxrss`.
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

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
SIREN = "siren"
_MEASURE = (
    "import json, resource, subprocess, sys; "
    "out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True).stdout; "
    "print(json.dumps({'kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'out': out}))"
)


def _model(folder: Path) -> Path:
    import torch

    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.training.config import InstructConfig

    config = load_config(InstructConfig, REPO / "configs/instruct/tiny.yaml")
    torch.manual_seed(0)
    return MintModel.from_config(config.model).save_pretrained(folder)


def _recording(path: Path, minutes: float) -> float:
    """Write the recording chunk by chunk; returns where its siren starts (seconds)."""
    from mint.data.synth.events import EVENT_KINDS, sample_event
    from mint.data.synth.long_scenes import build_long_recording, render_long_recording

    seconds = minutes * 60
    siren_at = 47 * 60.0 if seconds > 48 * 60 else 0.8 * seconds
    rng = np.random.default_rng(7)
    others = [kind for kind in EVENT_KINDS if kind != SIREN]
    events, onset = [], 30.0
    while onset < seconds - 5:
        if abs(onset - siren_at) > 5:
            events.append((sample_event(rng, others[int(rng.integers(len(others)))]), onset))
        onset += float(rng.uniform(60, 180))
    siren = sample_event(rng, SIREN)
    while siren.loudness != "loud":
        siren = sample_event(rng, SIREN)
    events.append((siren, siren_at))
    render_long_recording(build_long_recording(seconds, events, seed=1), path)
    return siren_at


def _run(command: list[str]) -> tuple[float, float, str]:
    """(peak RSS in GiB, seconds, what it printed) of one command in its own process."""
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True
    )
    measured = json.loads(result.stdout.splitlines()[-1])
    return measured["kib"] / 2**20, time.perf_counter() - began, measured["out"].strip()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[6, 60])
    parser.add_argument("--model", type=Path, help="a saved stage-2 model (default: the tiny config, fresh)")
    args = parser.parse_args()
    mint = str(Path(sys.executable).with_name("mint"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mint-long-") as tmp:
        model = str(args.model or _model(Path(tmp) / "model"))
        for minutes in args.minutes:
            path = Path(tmp) / f"{minutes:g}min.wav"
            siren_at = _recording(path, minutes)
            row = {
                "minutes": minutes,
                "file_MiB": round(path.stat().st_size / 2**20, 1),
                "siren_at_s": siren_at,
            }
            for name, command in (
                ("caption", [mint, "caption", str(path), "--model", model, "--max-new-tokens", "12"]),
                ("ask", [mint, "ask", str(path), f"is there a {SIREN}?", "--model", model]),
                ("locate", [mint, "locate", str(path), f"a {SIREN}", "--model", model, "--top", "1"]),
            ):
                gib, seconds, printed = _run(command)
                row[f"{name}_peak_rss_GiB"] = round(gib, 3)
                row[f"{name}_s"] = round(seconds, 1)
                # caption and ask print "PATH<tab>TEXT"; locate prints its best window and similarity.
                row[f"{name}_output"] = printed.partition("\t")[2] if name != "locate" else printed
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
