"""CIDEr-D: ours (`mint.evaluation.metrics.cider_d`) vs pycocoevalcap's Cider on AudioCaps test captions.

Each AudioCaps test clip has 5 captions; each caption in turn is scored against the other 4
(4,875 candidate/reference sets in all, one corpus per round). Both scorers get the same
PTB-tokenised text; tokenising is not timed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from common import REPO, Comparison, median_seconds

CAPTIONS = REPO / ".." / "shared" / "data" / "audiocaps-captions" / "test.csv"


def run(work: Path) -> list[Comparison]:
    if not CAPTIONS.is_file():
        raise FileNotFoundError(f"{CAPTIONS}: AudioCaps test captions not found")
    from pycocoevalcap.cider.cider import Cider

    from mint.evaluation.metrics import cider_d, ptb_tokenize

    by_clip: dict[str, list[str]] = {}
    with CAPTIONS.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_clip.setdefault(row["youtube_id"], []).append(row["caption"])
    groups = [captions for captions in by_clip.values() if len(captions) >= 2]
    flat = ptb_tokenize([caption for captions in groups for caption in captions])
    tokenised, start = [], 0
    for captions in groups:
        tokenised.append(flat[start : start + len(captions)])
        start += len(captions)
    rounds = max(len(captions) for captions in tokenised)
    corpora = []
    for held_out in range(rounds):
        chosen = [captions for captions in tokenised if held_out < len(captions)]
        candidates = [captions[held_out] for captions in chosen]
        references = [captions[:held_out] + captions[held_out + 1 :] for captions in chosen]
        corpora.append((candidates, references))

    def ours() -> list[float]:
        return [cider_d(candidates, references)[0] for candidates, references in corpora]

    def reference() -> list[float]:
        scores = []
        for candidates, references in corpora:
            res = {i: [candidate] for i, candidate in enumerate(candidates)}
            gts = {i: list(refs) for i, refs in enumerate(references)}
            scores.append(Cider().compute_score(gts, res)[0])
        return scores

    difference = float(np.max(np.abs(np.array(ours()) - np.array(reference()))))
    items = sum(len(candidates) for candidates, _ in corpora)
    return [
        Comparison(
            item=f"CIDEr-D, AudioCaps test ({items} captions vs the other 4)",
            baseline="pycocoevalcap Cider",
            ours="mint cider_d",
            baseline_s=median_seconds(reference, repeats=3),
            ours_s=median_seconds(ours, repeats=3),
            target=10.0,
            note=f"same scores: max abs difference {difference:.1e}",
        )
    ]
