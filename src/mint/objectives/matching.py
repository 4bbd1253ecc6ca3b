"""Audio-text matching objective (ATM): hard-negative sampling, the binary matching loss, and the score
that re-ranks retrieval candidates.

For each local clip one caption of the global batch is drawn as its negative, and for each local
caption one clip. A candidate that in fact matches (see `mint.objectives.keys`) is never drawn. How
hard the negatives are is a setting (`NegativeSampling`): with probability `1 - uniform_share` a
candidate is drawn in proportion to exp(cosine similarity / temperature), otherwise uniformly among the
allowed ones. A draw that is nearly always the most similar candidate (softmax of similarity over the
model's temperature, ~0.07, as before) gives the matching head only pairs the model cannot yet tell
apart, and it stays at the prior; softer and partly uniform draws let it learn (measurements in
`NegativeSampling`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mint.errors import ConfigError
from mint.objectives._checks import ObjectiveInputError, require_dims, require_integer, upcast
from mint.objectives.keys import ContentMatches


@dataclass(frozen=True)
class NegativeSampling:
    """How hard ATM's negatives are (`negatives.*` in a stage-1 config).

    Defaults chosen on ESC-10 (configs/pretrain/esc10.yaml, 200 steps, folds 1-3 -> fold 4, one run per
    setting; ATM loss = mean of the last 20 steps, AUC = ATM log-odds of the true class above the others):
    temperature 0.1 with no uniform share leaves ATM at 0.630 (AUC 0.57) and re-ranking gains nothing;
    0.5 with a quarter uniform: 0.521 (AUC 0.84), re-ranked accuracy 0.7625 vs ATC's 0.7375 at the
    calibrated weight. Softer or more uniform draws lower the loss further (all uniform: 0.440, AUC 0.88)
    on easier negatives, without a better re-ranked accuracy (0.6875 to 0.7375).
    """

    # Softmax temperature over the cosine similarities (ATC's [-1, 1], not divided by the model's own
    # temperature); lower draws harder negatives.
    temperature: float = 0.5
    # Probability that a row's negative is drawn uniformly from its allowed candidates instead.
    uniform_share: float = 0.25

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"negatives.temperature: expected a finite number > 0, got {self.temperature}")
        if not 0.0 <= self.uniform_share <= 1.0:
            raise ConfigError(
                f"negatives.uniform_share: expected a fraction in [0, 1], got {self.uniform_share}"
            )


@dataclass
class HardNegatives:
    """One negative per local row, as indices into the global batch.

    Rows whose `*_valid` flag is False had no allowed candidate; their index points at one of the row's
    matches only so that it can be used for indexing, and the row must be left out of the loss.
    """

    text_index: torch.Tensor
    text_valid: torch.Tensor
    audio_index: torch.Tensor
    audio_valid: torch.Tensor


def negative_probabilities(
    similarity: torch.Tensor, blocked: torch.Tensor, sampling: NegativeSampling
) -> torch.Tensor:
    """`[B, N]` float64 probability of drawing each column as row i's negative; a row with every column
    blocked gets all its mass on its first blocked column (a placeholder the caller flags invalid)."""
    allowed = ~blocked
    count = allowed.sum(dim=1, keepdim=True)
    logits = (similarity.double() / sampling.temperature).masked_fill(blocked, float("-inf"))
    # Rows without any allowed column would softmax to NaN; they get a placeholder below.
    hard = torch.softmax(logits.masked_fill(count == 0, 0.0), dim=1)
    uniform = allowed.double() / count.clamp(min=1)
    probabilities = (1.0 - sampling.uniform_share) * hard + sampling.uniform_share * uniform
    placeholder = F.one_hot(blocked.double().argmax(dim=1), blocked.shape[1]).double()
    return torch.where(count > 0, probabilities, placeholder)


def _sample_rows(
    similarity: torch.Tensor,
    blocked: torch.Tensor,
    sampling: NegativeSampling,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities = negative_probabilities(similarity, blocked, sampling)
    index = torch.multinomial(probabilities.to(generator.device), 1, generator=generator).to(blocked.device)
    # Zero-probability columns are never drawn by torch; re-checking the pick keeps a blocked candidate out
    # of the loss even if that ever changed.
    picked_blocked = blocked.gather(1, index).squeeze(1)
    return index.squeeze(1), ~picked_blocked


def sample_hard_negatives(
    sim_a2t: torch.Tensor,
    sim_t2a: torch.Tensor,
    matches: ContentMatches,
    generator: torch.Generator,
    sampling: NegativeSampling | None = None,
) -> HardNegatives:
    """Draw one negative caption per local clip and one negative clip per local caption.

    Args:
        sim_a2t: `[B, B_all]` cosine similarities of local clips to global captions.
        sim_t2a: `[B, B_all]` cosine similarities of local captions to global clips.
        matches: which of those pairs match (`content_matches`); they are never drawn.
        generator: source of randomness, so that a seeded generator gives the same draw. Sampling
            runs on the generator's device.
        sampling: temperature and uniform share (default `NegativeSampling()`).
    """
    sampling = sampling or NegativeSampling()
    require_dims("sim_a2t", sim_a2t, 2, "[B, B_all]")
    for name, tensor in (
        ("sim_t2a", sim_t2a),
        ("matches.clip_to_caption", matches.clip_to_caption),
        ("matches.caption_to_clip", matches.caption_to_clip),
    ):
        if tensor.shape != sim_a2t.shape:
            raise ObjectiveInputError(
                f"{name}: expected shape {tuple(sim_a2t.shape)} like sim_a2t, got {tuple(tensor.shape)}"
            )
    if not (torch.isfinite(sim_a2t).all() and torch.isfinite(sim_t2a).all()):
        raise ObjectiveInputError("sim_a2t/sim_t2a: similarities must be finite to sample hard negatives")
    device = sim_a2t.device
    text_index, text_valid = _sample_rows(sim_a2t, matches.clip_to_caption.to(device), sampling, generator)
    audio_index, audio_valid = _sample_rows(sim_t2a, matches.caption_to_clip.to(device), sampling, generator)
    return HardNegatives(text_index, text_valid, audio_index, audio_valid)


def match_logits_from_queries(per_query_logits: torch.Tensor) -> torch.Tensor:
    """`[N, Nq, 2]` matching-head logits of every query -> `[N, 2]` by averaging over queries."""
    require_dims("per_query_logits", per_query_logits, 3, "[N, Nq, 2]")
    return per_query_logits.mean(dim=1)


def match_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """`[N, 2]` match logits -> `[N]` log-odds of "match": logit[match] - logit[no match]."""
    require_dims("logits", logits, 2, "[N, 2]")
    return logits[:, 1] - logits[:, 0]


def rerank_score(
    similarity: np.ndarray | torch.Tensor | float,
    log_odds: np.ndarray | torch.Tensor | float,
    weight: float,
) -> np.ndarray | torch.Tensor | float:
    """The score of a re-ranked retrieval candidate: ATC similarity + `weight` x ATM log-odds.

    ATC knows how close a pair is among all pairs, ATM judges the one pair with both sides in view; BLIP
    adds its matching score to the contrastive similarity the same way. `weight` is chosen on a
    validation split (`mint.evaluation.retrieve.calibrate_rerank`); 0 is ATC alone.
    """
    return similarity + weight * log_odds


def matching_loss(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the match/no-match logits over the rows flagged valid.

    Args:
        logits: `[N, 2]`; class 1 means "the clip and the caption match".
        labels: `[N]` integer class of each row.
        valid: `[N]` bool; rows without a usable negative are False.

    Returns:
        The mean over valid rows; a zero that is still part of the graph when no row is valid, so
        that a backward pass through the summed stage-1 loss keeps working.
    """
    require_dims("logits", logits, 2, "[N, 2]")
    require_integer("labels", labels)
    rows = logits.shape[0]
    if labels.shape != (rows,) or valid.shape != (rows,):
        raise ObjectiveInputError(
            f"labels/valid: expected shape ({rows},), got {tuple(labels.shape)} and {tuple(valid.shape)}"
        )
    if valid.dtype != torch.bool:
        raise ObjectiveInputError(f"valid: expected a bool tensor, got dtype {valid.dtype}")
    kept = logits[valid]
    if kept.shape[0] == 0:
        return kept.sum() * 0.0
    return F.cross_entropy(upcast(kept), labels[valid])
