"""Caption metrics against pycocoevalcap on real AudioCaps captions (needs Java and ../shared).

Each clip's first caption is the candidate and its other four are the references, the usual
human-agreement check for AudioCaps.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mint.evaluation.metrics import (
    SPICE_UNAVAILABLE,
    bleu,
    caption_metrics_from_jsonl,
    cider_d,
    ptb_tokenize,
    rouge_l,
)
from mint_testing import AUDIOCAPS_CAPTIONS, require_module, require_shared

require_module("pycocoevalcap", "pip install pycocoevalcap")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402 (after the check that names the package)
from pycocoevalcap.cider.cider import Cider  # noqa: E402 (after the check that names the package)
from pycocoevalcap.meteor.meteor import Meteor  # noqa: E402 (after the check that names the package)
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402 (after the check that names the package)
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # noqa: E402 (after the check that names the package)

AUDIOCAPS_TEST = AUDIOCAPS_CAPTIONS / "test.csv"

pytestmark = pytest.mark.usefixtures("java")


@pytest.fixture(scope="module")
def audiocaps() -> tuple[dict[str, str], dict[str, list[str]]]:
    require_shared(AUDIOCAPS_TEST)
    clips: dict[str, list[str]] = {}
    with AUDIOCAPS_TEST.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            clips.setdefault(row["youtube_id"], []).append(row["caption"])
    assert len(clips) == 975 and all(len(captions) == 5 for captions in clips.values())
    candidates = {clip: captions[0] for clip, captions in clips.items()}
    references = {clip: captions[1:] for clip, captions in clips.items()}
    return candidates, references


@pytest.fixture(scope="module")
def reference_tokens(audiocaps) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(gts, res) tokenised by pycocoevalcap's own PTBTokenizer, as its COCOEvalCap does."""
    candidates, references = audiocaps
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({clip: [{"caption": ref} for ref in refs] for clip, refs in references.items()})
    res = tokenizer.tokenize({clip: [{"caption": candidates[clip]}] for clip in candidates})
    return gts, res


def test_ptb_tokenize_matches_the_reference_tokenizer(audiocaps, reference_tokens) -> None:
    candidates, references = audiocaps
    gts, res = reference_tokens
    clips = list(candidates)
    ours = ptb_tokenize(
        [candidates[clip] for clip in clips] + [ref for clip in clips for ref in references[clip]]
    )
    expected = [res[clip][0] for clip in clips] + [ref for clip in clips for ref in gts[clip]]
    assert ours == expected


@pytest.fixture(scope="module")
def reference_scores(reference_tokens) -> dict:
    """pycocoevalcap's BLEU, ROUGE-L and CIDEr-D (corpus score, per-item scores) on its own tokens."""
    gts, res = reference_tokens
    return {
        "BLEU": Bleu(4).compute_score(gts, res, verbose=0)[0],
        "ROUGE-L": Rouge().compute_score(gts, res),
        "CIDEr-D": Cider().compute_score(gts, res),
    }


def test_bleu_rouge_cider_equal_the_reference_scorers(reference_tokens, reference_scores) -> None:
    gts, res = reference_tokens
    clips = list(res)
    candidates = [res[clip][0] for clip in clips]
    references = [gts[clip] for clip in clips]

    np.testing.assert_allclose(bleu(candidates, references), reference_scores["BLEU"], rtol=0, atol=1e-6)
    for name, scorer in (("ROUGE-L", rouge_l), ("CIDEr-D", cider_d)):
        expected_mean, expected_items = reference_scores[name]
        mean, items = scorer(candidates, references)
        assert mean == pytest.approx(expected_mean, abs=1e-6), name
        np.testing.assert_allclose(items, expected_items, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.slow
def test_caption_metrics_from_jsonl_equal_the_reference_pipeline(
    audiocaps, reference_tokens, reference_scores, tmp_path
) -> None:
    candidates, references = audiocaps
    gts, res = reference_tokens
    path = tmp_path / "captions.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": clip, "candidate": candidates[clip], "references": references[clip]}) + "\n"
            for clip in candidates
        ),
        encoding="utf-8",
    )
    # The reference's METEOR process starts loading its paraphrase table on construction, so it
    # loads while ours runs: the two JVM start-ups overlap instead of adding up.
    reference_meteor = Meteor()
    ours = caption_metrics_from_jsonl(path)
    expected = dict(zip(("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"), reference_scores["BLEU"], strict=True))
    expected["METEOR"] = reference_meteor.compute_score(gts, res)[0]
    del reference_meteor
    expected["ROUGE-L"] = reference_scores["ROUGE-L"][0]
    expected["CIDEr-D"] = reference_scores["CIDEr-D"][0]

    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name
    assert ours["SPICE"] is None and ours["SPIDEr"] is None
    assert ours["unavailable"]["SPICE"] == SPICE_UNAVAILABLE
    assert "SPICE" in ours["unavailable"]["SPIDEr"]
