"""Caption metrics as the field reports them, on raw captions keyed by item id.

All captions are PTB-tokenised in one Java call (as pycocoevalcap does before scoring), then
scored with BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D and, when a SPICE jar is configured, SPICE and
SPIDEr = (CIDEr-D + SPICE) / 2. Metrics that cannot be computed are `None`, with the reason under
"unavailable".
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from mint.errors import DataError
from mint.evaluation.metrics.bleu import bleu
from mint.evaluation.metrics.cider import cider_d
from mint.evaluation.metrics.meteor import meteor
from mint.evaluation.metrics.rouge import rouge_l
from mint.evaluation.metrics.spice import SPICE_UNAVAILABLE, check_spice_jar, spice
from mint.evaluation.metrics.tokenize import ptb_tokenize

CAPTION_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE", "SPIDEr")


def _check_keys(candidates: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> None:
    if not candidates:
        raise DataError("caption metrics: candidates is empty; expected at least one item")
    missing = [key for key in candidates if key not in references]
    extra = [key for key in references if key not in candidates]
    if missing or extra:
        raise DataError(
            "caption metrics: candidates and references must have the same ids; "
            f"without references: {missing[:5]!r}, without a candidate: {extra[:5]!r}"
        )
    for key, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise DataError(f"caption metrics: references[{key!r}] must be a non-empty list of strings")
        if not all(isinstance(ref, str) for ref in refs):
            raise DataError(f"caption metrics: references[{key!r}] must contain only strings, got {refs!r}")
    for key, candidate in candidates.items():
        if not isinstance(candidate, str):
            raise DataError(f"caption metrics: candidates[{key!r}] must be a string, got {candidate!r}")


def compute_caption_metrics(
    candidates: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    spice_jar: str | os.PathLike[str] | None = None,
) -> dict:
    """Corpus caption metrics of one generated caption per id against that id's references.

    Returns {"BLEU-1": float, ..., "CIDEr-D": float, "SPICE": float | None, "SPIDEr": float | None,
    "unavailable": {metric name: reason}}.
    """
    _check_keys(candidates, references)
    if spice_jar is not None:
        check_spice_jar(spice_jar)
    ids = list(candidates)
    texts = [candidates[key] for key in ids]
    for key in ids:
        texts.extend(references[key])
    tokens = ptb_tokenize(texts)
    tokenised_candidates = tokens[: len(ids)]
    tokenised_references = []
    start = len(ids)
    for key in ids:
        tokenised_references.append(tokens[start : start + len(references[key])])
        start += len(references[key])

    result: dict = {
        f"BLEU-{order}": score
        for order, score in enumerate(bleu(tokenised_candidates, tokenised_references), start=1)
    }
    result["METEOR"] = meteor(tokenised_candidates, tokenised_references)[0]
    result["ROUGE-L"] = rouge_l(tokenised_candidates, tokenised_references)[0]
    result["CIDEr-D"] = cider_d(tokenised_candidates, tokenised_references)[0]
    unavailable: dict[str, str] = {}
    if spice_jar is None:
        result["SPICE"] = None
        result["SPIDEr"] = None
        unavailable = {"SPICE": SPICE_UNAVAILABLE, "SPIDEr": f"needs SPICE; {SPICE_UNAVAILABLE}"}
    else:
        result["SPICE"] = spice(tokenised_candidates, tokenised_references, spice_jar)[0]
        result["SPIDEr"] = (result["CIDEr-D"] + result["SPICE"]) / 2
    result["unavailable"] = unavailable
    return result


def _read_record(line: str, where: str) -> tuple[Hashable, str, list[str]]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with id, candidate and references")
    missing = [key for key in ("id", "candidate", "references") if key not in record]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    item_id, candidate, refs = record["id"], record["candidate"], record["references"]
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise DataError(f"{where}: field 'id' must be a string or an integer, got {item_id!r}")
    if not isinstance(candidate, str):
        raise DataError(f"{where}: field 'candidate' must be a string, got {candidate!r}")
    if not isinstance(refs, list) or not refs or not all(isinstance(ref, str) for ref in refs):
        raise DataError(f"{where}: field 'references' must be a non-empty list of strings, got {refs!r}")
    return item_id, candidate, refs


def caption_metrics_from_jsonl(
    path: str | os.PathLike[str], spice_jar: str | os.PathLike[str] | None = None
) -> dict:
    """`compute_caption_metrics` on a JSON-lines file of {"id", "candidate", "references": [...]}."""
    path = Path(path)
    try:
        # Split on "\n" only: str.splitlines would also split at U+2028 inside a JSON string.
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the caption file: {error}") from error
    candidates: dict[Hashable, str] = {}
    references: dict[Hashable, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item_id, candidate, refs = _read_record(line, where)
        if item_id in candidates:
            raise DataError(f"{where}: id {item_id!r} appears more than once")
        candidates[item_id] = candidate
        references[item_id] = refs
    if not candidates:
        raise DataError(f"{path}: no records; expected one JSON object per line")
    return compute_caption_metrics(candidates, references, spice_jar)
