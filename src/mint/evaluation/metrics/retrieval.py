"""Audio-text retrieval metrics with several captions per audio (AudioCaps / Clotho protocol).

Inputs are a similarity matrix `[N_audio, N_text]` and `text_to_audio[j]`, the audio that caption
j describes. Text->audio: each caption is a query with exactly one relevant audio. Audio->text:
each audio is a query whose relevant items are all of its captions.

Per query, the gallery is ordered by decreasing similarity. Ties are broken pessimistically:
among equal similarities every non-relevant item is placed before the relevant ones, so ties can
never improve a score (a constant similarity matrix gets the worst possible ranks).

Reported per direction, with ranks 1-based and fractions in [0, 1]:
* `R@k` (k = 1, 5, 10): fraction of queries with a relevant item among the first k;
  for audio->text this is a hit when any of the audio's captions is in the top k.
* `median_rank`, `mean_rank`: median / mean over queries of the rank of the first relevant item.
* `mAP@10`: mean over queries of AP@10 = (1 / min(m, 10)) * sum over ranks i <= 10 holding a
  relevant item of precision@i, with m the number of relevant items. With m = 1 (text->audio)
  this is 1/rank when rank <= 10 and 0 otherwise: the DCASE 2022 Task 6B definition. For
  audio->text (m = the audio's number of captions) it is the usual truncated average precision.
"""

from __future__ import annotations

import numpy as np

from mint.errors import DataError

RECALL_AT = (1, 5, 10)
MAP_CUTOFF = 10


def ranked_relevance(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """`relevant` [Q, C] reordered, per query row, by decreasing score with pessimistic ties."""
    # lexsort's last key is the primary one; False (non-relevant) sorts before True among equal scores.
    order = np.lexsort((relevant, -scores), axis=-1)
    return np.take_along_axis(relevant, order, axis=-1)


def ranking_metrics(ranked: np.ndarray) -> dict[str, float]:
    """R@1/5/10, mAP@10, median and mean rank from `ranked_relevance` output (each row has a hit)."""
    first_rank = np.argmax(ranked, axis=1) + 1
    top = ranked[:, :MAP_CUTOFF].astype(np.float64)
    precision_at = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    relevant_count = ranked.sum(axis=1)
    average_precision = (precision_at * top).sum(axis=1) / np.minimum(relevant_count, MAP_CUTOFF)
    metrics = {f"R@{k}": float(np.mean(first_rank <= k)) for k in RECALL_AT}
    metrics[f"mAP@{MAP_CUTOFF}"] = float(average_precision.mean())
    metrics["median_rank"] = float(np.median(first_rank))
    metrics["mean_rank"] = float(first_rank.mean())
    return metrics


def _check_inputs(similarity: np.ndarray, text_to_audio: np.ndarray) -> None:
    if similarity.ndim != 2:
        raise DataError(
            f"retrieval: similarity must be a 2-D [N_audio, N_text] array, got shape {similarity.shape}"
        )
    if not np.issubdtype(similarity.dtype, np.number) or not np.all(np.isfinite(similarity)):
        raise DataError("retrieval: similarity must hold finite numbers")
    audios, texts = similarity.shape
    if text_to_audio.shape != (texts,) or not np.issubdtype(text_to_audio.dtype, np.integer):
        raise DataError(
            f"retrieval: text_to_audio must be an integer array of shape ({texts},) (one audio index per "
            f"caption column of similarity), got dtype {text_to_audio.dtype} and shape {text_to_audio.shape}"
        )
    if texts and (text_to_audio.min() < 0 or text_to_audio.max() >= audios):
        raise DataError(f"retrieval: text_to_audio values must lie in [0, {audios}), the rows of similarity")
    without_caption = np.flatnonzero(np.bincount(text_to_audio, minlength=audios) == 0)
    if audios == 0 or len(without_caption):
        raise DataError(
            "retrieval: every audio needs at least one caption; audio rows without one: "
            f"{without_caption[:10].tolist()}"
        )


def retrieval_metrics(similarity: np.ndarray, text_to_audio: np.ndarray) -> dict[str, dict[str, float]]:
    """{"text_to_audio": metrics, "audio_to_text": metrics} for a [N_audio, N_text] similarity matrix."""
    similarity = np.asarray(similarity)
    text_to_audio = np.asarray(text_to_audio)
    _check_inputs(similarity, text_to_audio)
    relevant = text_to_audio[None, :] == np.arange(similarity.shape[0])[:, None]
    return {
        "text_to_audio": ranking_metrics(ranked_relevance(similarity.T, relevant.T)),
        "audio_to_text": ranking_metrics(ranked_relevance(similarity, relevant)),
    }
