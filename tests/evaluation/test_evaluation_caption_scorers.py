"""BLEU, ROUGE-L and CIDEr-D on tokenised captions: hand-worked cases and pycocoevalcap on random corpora."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mint.errors import DataError
from mint.evaluation.metrics import bleu, cider_d, rouge_l
from mint.evaluation.metrics.rouge import lcs_length
from mint_testing import require_module

require_module("pycocoevalcap", "pip install pycocoevalcap")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402 (after the check that names the package)
from pycocoevalcap.cider.cider import Cider  # noqa: E402 (after the check that names the package)
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402 (after the check that names the package)

# Two items. Item 1: every n-gram of the candidate is in the first reference; the closest
# reference length is 4 (the second reference, |4 - 4| = 0). Item 2: "birds" is clipped to one
# match; bigrams "birds sing" and "birds chirp" match; no trigram or 4-gram matches; the closest
# reference length is 7 (|7 - 5| = 2 beats |2 - 5| = 3).
CANDIDATES = ["a dog barks loudly", "birds sing and birds chirp"]
REFERENCES = [
    ["a dog barks loudly outside", "the dog is barking"],
    ["birds sing", "birds chirp and sing in the trees"],
]


def test_bleu_hand_worked() -> None:
    precisions = [(4 + 4) / (4 + 5), (3 + 2) / (3 + 4), (2 + 0) / (2 + 3), (1 + 0) / (1 + 2)]
    brevity_penalty = math.exp(1 - (4 + 7) / (4 + 5))
    expected = [math.prod(precisions[:n]) ** (1 / n) * brevity_penalty for n in range(1, 5)]
    np.testing.assert_allclose(bleu(CANDIDATES, REFERENCES), expected, rtol=1e-8)


def test_rouge_l_hand_worked() -> None:
    beta2 = 1.2**2
    # Item 1: LCS 4 with the first reference (P = 4/4, R = 4/5), 1 ("dog") with the second.
    item1 = (1 + beta2) * 1.0 * 0.8 / (0.8 + beta2 * 1.0)
    # Item 2: LCS 2 with both references: best P = 2/5, best R = 2/2 (from "birds sing").
    item2 = (1 + beta2) * 0.4 * 1.0 / (1.0 + beta2 * 0.4)
    mean, items = rouge_l(CANDIDATES, REFERENCES)
    np.testing.assert_allclose(items, [item1, item2], rtol=1e-12)
    assert mean == pytest.approx((item1 + item2) / 2, rel=1e-12)


def test_lcs_length_hand_worked() -> None:
    assert lcs_length(["a", "b", "c", "d", "e"], ["x", "b", "d", "y", "e"]) == 3
    assert lcs_length([], ["a"]) == 0


def test_perfect_candidates_have_no_brevity_penalty_and_full_precision() -> None:
    refs = [["one two three four five"], ["six seven eight nine"]]
    scores = bleu([refs[0][0], refs[1][0]], refs)
    np.testing.assert_allclose(scores, [1.0, 1.0, 1.0, 1.0], rtol=1e-8)


def _corpus(words: list[str]) -> st.SearchStrategy[tuple[list[str], list[list[str]]]]:
    sentence = st.lists(st.sampled_from(words), min_size=0, max_size=9).map(" ".join)
    nonempty = st.lists(st.sampled_from(words), min_size=1, max_size=9).map(" ".join)
    item = st.tuples(sentence, st.lists(nonempty, min_size=1, max_size=4))
    return st.lists(item, min_size=1, max_size=6).map(
        lambda items: ([candidate for candidate, _ in items], [refs for _, refs in items])
    )


@settings(max_examples=60, deadline=None)
@given(_corpus(["a", "dog", "barks", "the", "car", "engine", "runs"]))
def test_scorers_equal_pycocoevalcap_on_random_corpora(corpus) -> None:
    candidates, references = corpus
    gts = {index: refs for index, refs in enumerate(references)}
    res = {index: [candidate] for index, candidate in enumerate(candidates)}

    np.testing.assert_allclose(
        bleu(candidates, references), Bleu(4).compute_score(gts, res, verbose=0)[0], rtol=0, atol=1e-9
    )
    expected_rouge, expected_rouge_items = Rouge().compute_score(gts, res)
    rouge_mean, rouge_items = rouge_l(candidates, references)
    np.testing.assert_allclose(rouge_items, expected_rouge_items, rtol=0, atol=1e-12)
    assert rouge_mean == pytest.approx(expected_rouge, abs=1e-12)
    expected_cider, expected_cider_items = Cider().compute_score(gts, res)
    cider_mean, cider_items = cider_d(candidates, references)
    np.testing.assert_allclose(cider_items, expected_cider_items, rtol=0, atol=1e-9)
    assert cider_mean == pytest.approx(expected_cider, abs=1e-9)


def test_cider_d_hand_worked_with_clipping() -> None:
    # "a" occurs in every item's references, so its idf is log(3/3) = 0; every other n-gram has
    # idf log(3). A 3-word caption has no 4-grams, so order 4 contributes 0 to the mean over orders.
    refs = [["a dog barks"], ["a cat meows"], ["a car passes"]]
    _, exact = cider_d(["a dog barks", "a cat meows", "a car passes"], refs)
    np.testing.assert_allclose(exact, [10 * (1 + 1 + 1 + 0) / 4] * 3, rtol=1e-12)
    # "dog dog dog" against "a dog barks", order 1: tf-idf (dog: 3 log3) against (dog: log3,
    # barks: log3). The clipped dot product is min(3 log3, log3) * log3 = log3^2 and the norms are
    # 3 log3 and sqrt(2) log3, so cos = 1 / (3 sqrt(2)); no bigram or trigram matches; same length.
    _, repeated = cider_d(["dog dog dog", "a cat meows", "a car passes"], refs)
    assert repeated[0] == pytest.approx(10 * (1 / (3 * math.sqrt(2))) / 4, rel=1e-12)


@pytest.mark.parametrize("scorer", [bleu, rouge_l, cider_d])
def test_bad_inputs_raise_data_error(scorer) -> None:
    with pytest.raises(DataError, match="at least one"):
        scorer([], [])
    with pytest.raises(DataError, match="references\\[0\\]"):
        scorer(["a dog"], [[]])
    with pytest.raises(DataError, match="reference lists"):
        scorer(["a dog", "a cat"], [["a dog"]])
