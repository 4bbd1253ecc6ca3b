"""Corpus BLEU-1..4 as the captioning literature reports it (pycocoevalcap's `Bleu(4)`).

Per item, candidate n-gram counts are clipped by the largest count of that n-gram in any one
reference. Clipped matches, candidate n-gram totals and lengths are summed over the corpus;
BLEU-n is the geometric mean of the modified precisions of orders 1..n times the brevity penalty
exp(1 - r / c) when the summed candidate length c is below the summed reference length r. The
reference length of an item is the "closest" one: the reference whose length is nearest the
candidate's, the shorter on a tie.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from mint.evaluation.metrics.text import check_caption_inputs, ngram_counts

# The reference toolkit adds these to every numerator and denominator so that a corpus with no
# matches scores (almost) 0 instead of dividing by zero; kept so that scores agree to 1e-9.
_NUMERATOR_EPS = 1e-15
_DENOMINATOR_EPS = 1e-9


def _closest_length(candidate_length: int, reference_lengths: Sequence[int]) -> int:
    return min(reference_lengths, key=lambda length: (abs(length - candidate_length), length))


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> list[float]:
    """Corpus-level [BLEU-1, ..., BLEU-max_n] of tokenised candidates against their references."""
    check_caption_inputs("BLEU", candidates, references)
    matches = [0] * max_n
    totals = [0] * max_n
    candidate_length = 0
    reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        tokens = candidate.split()
        ref_tokens = [ref.split() for ref in refs]
        max_ref_counts: Counter[tuple[str, ...]] = Counter()
        for tokens_of_ref in ref_tokens:
            max_ref_counts |= ngram_counts(tokens_of_ref, max_n)
        for gram, count in ngram_counts(tokens, max_n).items():
            matches[len(gram) - 1] += min(count, max_ref_counts[gram])
        for n in range(1, max_n + 1):
            totals[n - 1] += max(0, len(tokens) - n + 1)
        candidate_length += len(tokens)
        reference_length += _closest_length(len(tokens), [len(t) for t in ref_tokens])

    ratio = (candidate_length + _NUMERATOR_EPS) / (reference_length + _DENOMINATOR_EPS)
    brevity_penalty = math.exp(1.0 - 1.0 / ratio) if ratio < 1.0 else 1.0
    scores = []
    log_precision_sum = 0.0
    for n in range(1, max_n + 1):
        precision = (matches[n - 1] + _NUMERATOR_EPS) / (totals[n - 1] + _DENOMINATOR_EPS)
        log_precision_sum += math.log(precision)
        scores.append(math.exp(log_precision_sum / n) * brevity_penalty)
    return scores
