"""Tokenised caption inputs shared by the caption metrics: validation and n-gram counting.

Every scorer takes `candidates[i]` (one tokenised caption, tokens separated by spaces) and
`references[i]` (one or more tokenised captions of the same item), as produced by `ptb_tokenize`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mint.errors import DataError


def check_caption_inputs(metric: str, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise DataError unless there is at least one item, each with a candidate and >= 1 reference."""
    if len(candidates) != len(references):
        raise DataError(
            f"{metric}: got {len(candidates)} candidates but {len(references)} reference lists; "
            "expected one reference list per candidate"
        )
    if not candidates:
        raise DataError(f"{metric}: expected at least one candidate caption, got none")
    for index, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
        if not isinstance(candidate, str):
            raise DataError(f"{metric}: candidates[{index}] must be a string, got {type(candidate).__name__}")
        if isinstance(refs, str) or not isinstance(refs, Sequence) or len(refs) == 0:
            raise DataError(
                f"{metric}: references[{index}] must be a non-empty list of strings, got {refs!r}"
            )
        for position, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise DataError(
                    f"{metric}: references[{index}][{position}] must be a string, got {type(ref).__name__}"
                )


def ngram_counts(tokens: Sequence[str], max_n: int) -> Counter[tuple[str, ...]]:
    """Occurrences of every n-gram of length 1..max_n in `tokens`."""
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_n + 1):
        counts.update(tuple(tokens[start : start + n]) for start in range(len(tokens) - n + 1))
    return counts
