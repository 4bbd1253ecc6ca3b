"""SPICE (Anderson et al., 2016) through a user-provided SPICE 1.0 jar.

SPICE parses captions into scene graphs with Stanford CoreNLP 3.6.0, whose jars (about 400 MB)
are not shipped by pycocoevalcap and cannot be fetched here. The user points `spice_jar` at a
`spice-1.0.jar` whose `lib/` folder holds `stanford-corenlp-3.6.0.jar` and
`stanford-corenlp-3.6.0-models.jar` (the layout the jar's manifest expects). Without it SPICE is
reported as unavailable, never as 0.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mint.errors import MintError
from mint.evaluation.metrics.java import java_executable, run_java
from mint.evaluation.metrics.text import check_caption_inputs

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
SPICE_UNAVAILABLE = (
    "SPICE unavailable: set spice_jar to the path of spice-1.0.jar with Stanford CoreNLP 3.6.0 "
    f"({' and '.join(CORENLP_JARS)}) in the lib/ folder beside it"
)


def check_spice_jar(spice_jar: str | os.PathLike[str]) -> Path:
    """The jar's path once it and the CoreNLP jars it needs are found; MintError naming what is missing."""
    jar = Path(spice_jar).expanduser()
    if not jar.is_file():
        raise MintError(f"SPICE: spice_jar {str(jar)!r} is not a file; expected the path of spice-1.0.jar")
    missing = [name for name in CORENLP_JARS if not (jar.parent / "lib" / name).is_file()]
    if missing:
        raise MintError(
            f"SPICE: {jar.parent / 'lib'} lacks {', '.join(missing)}; SPICE needs Stanford CoreNLP 3.6.0 "
            "there (from stanford-corenlp-full-2015-12-09.zip)"
        )
    return jar


def _as_float(value: float | str | None) -> float:
    # The jar writes NaN (or nothing) for an item whose graphs are empty; the reference keeps it as NaN.
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def spice(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    spice_jar: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[float, np.ndarray]:
    """Mean SPICE F-score over items and the per-item scores, for tokenised captions.

    `cache_dir` (optional) is where the jar caches parses between runs.
    """
    check_caption_inputs("SPICE", candidates, references)
    jar = check_spice_jar(spice_jar)
    with tempfile.TemporaryDirectory(prefix="mint-spice-") as work:
        input_path = Path(work) / "input.json"
        output_path = Path(work) / "output.json"
        items = [
            {"image_id": index, "test": candidate, "refs": list(refs)}
            for index, (candidate, refs) in enumerate(zip(candidates, references, strict=True))
        ]
        input_path.write_text(json.dumps(items), encoding="utf-8")
        command = [java_executable(), "-jar", "-Xmx8G", str(jar), str(input_path), "-out", str(output_path)]
        if cache_dir is not None:
            command += ["-cache", str(cache_dir)]
        run_java("SPICE", [*command, "-subset", "-silent"], b"", cwd=jar.parent)
        try:
            results = json.loads(output_path.read_text(encoding="utf-8"))
            by_item = {result["image_id"]: result["scores"]["All"]["f"] for result in results}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise MintError(f"SPICE: could not read the jar's output {output_path}: {error}") from error
    if set(by_item) != set(range(len(items))):
        raise MintError(f"SPICE: the jar returned scores for {len(by_item)} of {len(items)} items")
    scores = np.array([_as_float(by_item[index]) for index in range(len(items))], dtype=np.float64)
    return float(scores.mean()), scores
