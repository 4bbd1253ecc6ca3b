"""ROUGE-L as pycocoevalcap reports it for captions (Lin, 2004; beta = 1.2).

For each item, precision and recall of the longest common subsequence (LCS) are computed against
every reference; the largest precision and the largest recall (possibly from different
references) give F = (1 + beta^2) P R / (R + beta^2 P). The corpus score is the mean over items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mint.evaluation.metrics.text import check_caption_inputs


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if len(first) < len(second):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for position, other in enumerate(second):
            current.append(
                previous[position] + 1 if token == other else max(previous[position + 1], current[-1])
            )
        previous = current
    return previous[-1]


def _rouge_l_item(candidate: list[str], references: list[list[str]], beta: float) -> float:
    best_precision = 0.0
    best_recall = 0.0
    for reference in references:
        common = lcs_length(reference, candidate)
        best_precision = max(best_precision, common / len(candidate))
        best_recall = max(best_recall, common / len(reference))
    if best_precision == 0.0 or best_recall == 0.0:
        return 0.0
    return (1 + beta**2) * best_precision * best_recall / (best_recall + beta**2 * best_precision)


def rouge_l(
    candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2
) -> tuple[float, np.ndarray]:
    """Mean ROUGE-L over items and the per-item scores, for tokenised captions.

    Tokens are the fields between single spaces, as in the reference: an empty caption is one
    empty token, so it has a length of 1 and matches nothing but another empty caption.
    """
    check_caption_inputs("ROUGE-L", candidates, references)
    scores = np.array(
        [
            _rouge_l_item(candidate.split(" "), [ref.split(" ") for ref in refs], beta)
            for candidate, refs in zip(candidates, references, strict=True)
        ],
        dtype=np.float64,
    )
    return float(scores.mean()), scores
