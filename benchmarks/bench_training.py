"""Training throughput and peak memory of the tiny and the paper-scale stage-1 configurations.

Each runs `scripts/paper_smoke.py` in its own process, so that its peak resident memory is its
own; see that script for what is built and how it is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import REPO

# (scale, extra arguments): the paper scale at its smoke-test defaults, the tiny one at its config's batch.
RUNS = (("tiny", ["--steps", "4"]), ("paper", ["--steps", "2"]))


def run(work: Path) -> list[dict]:
    results = []
    for scale, extra in RUNS:
        out = work / f"training-{scale}.json"
        command = [
            sys.executable,
            str(REPO / "scripts" / "paper_smoke.py"),
            "--scale",
            scale,
            "--json",
            str(out),
        ]
        completed = subprocess.run([*command, *extra], capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
        results.append(json.loads(out.read_text()))
    return results
