"""Retrieval metrics: a hand-ranked example, pessimistic ties, and a brute-force re-computation."""

from __future__ import annotations

import numpy as np
import pytest

from mint.errors import DataError
from mint.evaluation.metrics import retrieval_metrics

# Three audios, six captions: audio 0 has captions {0, 2, 5}, audio 1 has {1, 4}, audio 2 has {3}.
TEXT_TO_AUDIO = np.array([0, 1, 0, 2, 1, 0])
SIMILARITY = np.array(
    [
        [0.9, 0.8, 0.1, 0.3, 0.2, 0.5],
        [0.2, 0.4, 0.1, 0.6, 0.4, 0.4],
        [0.7, 0.1, 0.6, 0.2, 0.3, 0.5],
    ]
)


def test_audio_to_text_hand_ranked() -> None:
    # Audio 0: t0 .9 (hit), t1 .8, t5 .5 (hit), t3 .3, t4 .2, t2 .1 (hit) -> hits at 1, 3, 6;
    #   AP@10 = (1/1 + 2/3 + 3/6) / 3.
    # Audio 1: t3 .6, then t1, t4, t5 tie at .4 and the non-relevant t5 goes first (pessimistic;
    #   index order would put it last) -> hits at 3, 4;
    #   AP@10 = (1/3 + 2/4) / 2.
    # Audio 2: t0 .7, t2 .6, t5 .5, t4 .3, t3 .2 (hit) -> hit at 5; AP@10 = 1/5.
    first_ranks = [1, 3, 5]
    average_precisions = [(1 + 2 / 3 + 3 / 6) / 3, (1 / 3 + 2 / 4) / 2, 1 / 5]
    metrics = retrieval_metrics(SIMILARITY, TEXT_TO_AUDIO)["audio_to_text"]
    assert metrics["R@1"] == pytest.approx(1 / 3)
    assert metrics["R@5"] == pytest.approx(1.0)
    assert metrics["R@10"] == pytest.approx(1.0)
    assert metrics["median_rank"] == pytest.approx(np.median(first_ranks))
    assert metrics["mean_rank"] == pytest.approx(np.mean(first_ranks))
    assert metrics["mAP@10"] == pytest.approx(np.mean(average_precisions))


def test_text_to_audio_hand_ranked() -> None:
    # Columns read as queries over (a0, a1, a2); the true audio's rank:
    # t0 (.9 .2 .7) -> a0 is 1st; t1 (.8 .4 .1) -> a1 2nd; t2 (.1 .1 .6) -> a0 ties a1, pessimistic:
    # 3rd; t3 (.3 .6 .2) -> a2 3rd; t4 (.2 .4 .3) -> a1 1st; t5 (.5 .4 .5) -> a0 ties a2, pessimistic: 2nd.
    ranks = np.array([1, 2, 3, 3, 1, 2])
    metrics = retrieval_metrics(SIMILARITY, TEXT_TO_AUDIO)["text_to_audio"]
    assert metrics["R@1"] == pytest.approx(2 / 6)
    assert metrics["R@5"] == pytest.approx(1.0)
    assert metrics["median_rank"] == pytest.approx(2.0)
    assert metrics["mean_rank"] == pytest.approx(2.0)
    # DCASE 2022 Task 6B: 1/rank when the rank is at most 10.
    assert metrics["mAP@10"] == pytest.approx(np.mean(1 / ranks))


def test_constant_similarity_gets_the_worst_ranks() -> None:
    metrics = retrieval_metrics(np.zeros((3, 6)), TEXT_TO_AUDIO)
    assert metrics["text_to_audio"]["mean_rank"] == pytest.approx(3.0)
    assert metrics["text_to_audio"]["R@1"] == 0.0
    # Audio 0 has 3 captions among 6 -> first hit at 4; audio 1: 2 -> 5; audio 2: 1 -> 6.
    assert metrics["audio_to_text"]["mean_rank"] == pytest.approx((4 + 5 + 6) / 3)


def _brute_force(similarity: np.ndarray, text_to_audio: np.ndarray) -> dict[str, dict[str, float]]:
    """Straightforward per-query loops, ordering by (score desc, relevant last among ties)."""

    def direction(queries: list[tuple[np.ndarray, set[int]]]) -> dict[str, float]:
        first, aps = [], []
        for scores, relevant in queries:
            order = sorted(range(len(scores)), key=lambda item: (-scores[item], item in relevant))
            hits = [position + 1 for position, item in enumerate(order) if item in relevant]
            first.append(hits[0])
            in_top = [rank for rank in hits if rank <= 10]
            aps.append(sum((index + 1) / rank for index, rank in enumerate(in_top)) / min(len(relevant), 10))
        result = {f"R@{k}": float(np.mean([rank <= k for rank in first])) for k in (1, 5, 10)}
        result.update({"mAP@10": float(np.mean(aps)), "median_rank": float(np.median(first))})
        result["mean_rank"] = float(np.mean(first))
        return result

    audios = similarity.shape[0]
    captions_of = [set(np.flatnonzero(text_to_audio == audio).tolist()) for audio in range(audios)]
    return {
        "text_to_audio": direction(
            [(similarity[:, text], {int(text_to_audio[text])}) for text in range(len(text_to_audio))]
        ),
        "audio_to_text": direction([(similarity[audio], captions_of[audio]) for audio in range(audios)]),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_brute_force_computation_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    audios = 30
    # Between 1 and 14 captions per audio, so audio->text has more than 10 relevant items at times.
    counts = rng.integers(1, 15, size=audios)
    text_to_audio = rng.permutation(np.repeat(np.arange(audios), counts))
    # Few distinct values, so ties are frequent.
    similarity = rng.integers(0, 6, size=(audios, len(text_to_audio))).astype(np.float32)
    ours = retrieval_metrics(similarity, text_to_audio)
    expected = _brute_force(similarity, text_to_audio)
    for direction in expected:
        for name, value in expected[direction].items():
            assert ours[direction][name] == pytest.approx(value, abs=1e-12), (direction, name)


def test_bad_inputs_raise_data_error() -> None:
    with pytest.raises(DataError, match="2-D"):
        retrieval_metrics(np.zeros(6), TEXT_TO_AUDIO)
    with pytest.raises(DataError, match="shape \\(6,\\)"):
        retrieval_metrics(SIMILARITY, TEXT_TO_AUDIO[:5])
    with pytest.raises(DataError, match="must lie in \\[0, 3\\)"):
        retrieval_metrics(SIMILARITY, np.array([0, 1, 0, 3, 1, 0]))
    with pytest.raises(DataError, match="audio rows without one: \\[2\\]"):
        retrieval_metrics(SIMILARITY, np.array([0, 1, 0, 1, 1, 0]))
    with pytest.raises(DataError, match="finite"):
        retrieval_metrics(np.full((3, 6), np.nan), TEXT_TO_AUDIO)
