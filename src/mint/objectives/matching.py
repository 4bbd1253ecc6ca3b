"""Audio-text matching objective (ATM): hard-negative sampling and the binary matching loss.

Hard negatives are drawn from the contrastive similarities: for each local clip one caption of the
global batch, for each local caption one clip, with probability proportional to the softmax of
the similarity over the allowed candidates. A candidate is never allowed when it would in fact
be a positive: the pair itself, any pair with the same caption text, or any pair of the same
clip. Clips and captions are identified by integer keys (`caption_key` for captions; any stable
hash of the clip for audio).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mint.objectives._checks import ObjectiveInputError, require_dims, require_integer, upcast


def normalise_caption(text: str) -> str:
    """Lowercase, Unicode NFC, surrounding whitespace stripped and inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def caption_key(text: str) -> int:
    """A stable non-negative 63-bit key of the normalised caption (same in every process and run)."""
    digest = hashlib.blake2b(normalise_caption(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def caption_keys(texts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """`caption_key` of each text as an int64 tensor."""
    return torch.tensor([caption_key(text) for text in texts], dtype=torch.long, device=device)


@dataclass
class HardNegatives:
    """One negative per local row, as indices into the global batch.

    Rows whose `*_valid` flag is False had no allowed candidate; their index points at the row's
    own positive only so that it can be used for indexing, and the row must be left out of the loss.
    """

    text_index: torch.Tensor
    text_valid: torch.Tensor
    audio_index: torch.Tensor
    audio_valid: torch.Tensor


def _sample_rows(
    scores: torch.Tensor, blocked: torch.Tensor, positives: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    has_candidate = ~blocked.all(dim=1)
    logits = scores.float().masked_fill(blocked, float("-inf"))
    # A row with every candidate blocked would softmax to NaN; give it all its mass on its positive
    # instead, so sampling stays well defined and the row is reported as invalid.
    positive_only = torch.full_like(logits, float("-inf"))
    positive_only.scatter_(1, positives[:, None], 0.0)
    probs = torch.softmax(torch.where(has_candidate[:, None], logits, positive_only), dim=1)
    index = torch.multinomial(probs.to(generator.device), 1, generator=generator).to(scores.device)
    # Zero-probability columns are never drawn by torch; re-checking the pick keeps a blocked
    # candidate out of the loss even if that ever changed.
    picked_blocked = blocked.gather(1, index).squeeze(1)
    return index.squeeze(1), has_candidate & ~picked_blocked


def sample_hard_negatives(
    sim_a2t: torch.Tensor,
    sim_t2a: torch.Tensor,
    audio_keys: torch.Tensor,
    text_keys: torch.Tensor,
    rank: int,
    generator: torch.Generator,
) -> HardNegatives:
    """Draw one negative caption per local clip and one negative clip per local caption.

    Args:
        sim_a2t: `[B, B_all]` local clips against global captions (temperature-scaled).
        sim_t2a: `[B, B_all]` local captions against global clips (temperature-scaled).
        audio_keys: `[B_all]` integer key of each global pair's clip.
        text_keys: `[B_all]` integer key of each global pair's caption (see `caption_key`).
        rank: this process's rank; local row i is global pair `rank * B + i`.
        generator: source of randomness, so that a seeded generator gives the same draw. Sampling
            runs on the generator's device.
    """
    require_dims("sim_a2t", sim_a2t, 2, "[B, B_all]")
    if sim_t2a.shape != sim_a2t.shape:
        raise ObjectiveInputError(
            f"sim_t2a: expected shape {tuple(sim_a2t.shape)} like sim_a2t, got {tuple(sim_t2a.shape)}"
        )
    batch, global_batch = sim_a2t.shape
    for name, keys in (("audio_keys", audio_keys), ("text_keys", text_keys)):
        require_integer(name, keys)
        if keys.shape != (global_batch,):
            raise ObjectiveInputError(f"{name}: expected shape ({global_batch},), got {tuple(keys.shape)}")
    if rank < 0 or (rank + 1) * batch > global_batch:
        raise ObjectiveInputError(
            f"rank: local rows {rank} * {batch} .. {(rank + 1) * batch} fall outside the global batch "
            f"of {global_batch}"
        )
    if not (torch.isfinite(sim_a2t).all() and torch.isfinite(sim_t2a).all()):
        raise ObjectiveInputError("sim_a2t/sim_t2a: similarities must be finite to sample hard negatives")
    positives = torch.arange(batch, device=sim_a2t.device) + rank * batch
    audio_keys = audio_keys.to(sim_a2t.device)
    text_keys = text_keys.to(sim_a2t.device)
    # Column j is a positive for local row i when it is the same pair, the same clip or the same
    # caption; the rule is the same in both directions.
    blocked = (audio_keys[positives][:, None] == audio_keys[None, :]) | (
        text_keys[positives][:, None] == text_keys[None, :]
    )
    text_index, text_valid = _sample_rows(sim_a2t, blocked, positives, generator)
    audio_index, audio_valid = _sample_rows(sim_t2a, blocked, positives, generator)
    return HardNegatives(text_index, text_valid, audio_index, audio_valid)


def match_logits_from_queries(per_query_logits: torch.Tensor) -> torch.Tensor:
    """`[N, Nq, 2]` matching-head logits of every query -> `[N, 2]` by averaging over queries."""
    require_dims("per_query_logits", per_query_logits, 3, "[N, Nq, 2]")
    return per_query_logits.mean(dim=1)


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
