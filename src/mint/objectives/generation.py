"""Audio-grounded text generation objective (ATG): next-token prediction of the caption.

The Bridge-Net reads the caption causally while every text position sees all audio queries.
The caption's first token (`[CLS]` from a BERT tokenizer) is replaced by a decoder start token,
marking the sequence as a generation task rather than an encoding one, and each position is
trained to predict the token that follows it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mint.objectives._checks import ObjectiveInputError, require_dims, require_integer, upcast

IGNORE_INDEX = -100


def prepare_generation_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, decoder_start_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and labels for the caption tokens.

    Args:
        input_ids: `[B, L]` tokenised captions, each starting with `[CLS]`.
        attention_mask: `[B, L]`, 0 on padding.
        decoder_start_token_id: token that replaces the first one.
        pad_token_id: padding id; positions holding it are ignored in the labels as well as
            positions where `attention_mask` is 0.

    Returns:
        `(input_ids with the start token, labels)`. Labels are the original ids with padding and
        the start position set to -100 (`IGNORE_INDEX`); they are not shifted (`generation_loss`
        does that).
    """
    require_dims("input_ids", input_ids, 2, "[B, L]")
    require_integer("input_ids", input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ObjectiveInputError(
            f"attention_mask: expected shape {tuple(input_ids.shape)} like input_ids, "
            f"got {tuple(attention_mask.shape)}"
        )
    if input_ids.shape[1] == 0:
        raise ObjectiveInputError("input_ids: expected at least one token per caption, got length 0")
    padding = (attention_mask == 0) | (input_ids == pad_token_id)
    labels = input_ids.masked_fill(padding, IGNORE_INDEX)
    labels[:, 0] = IGNORE_INDEX
    decoder_ids = input_ids.clone()
    decoder_ids[:, 0] = decoder_start_token_id
    return decoder_ids, labels


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(positions, targets)` for labels `[B, L]` from `prepare_generation_inputs`: `positions` `[B, L]` marks
    each position t whose label t + 1 is a target, and `targets` `[n]` holds those labels in row-major order.
    The LM head need run only at `positions` (padding and each caption's last token have nothing to predict).
    """
    require_dims("labels", labels, 2, "[B, L]")
    require_integer("labels", labels)
    following = labels[:, 1:]
    has_target = following != IGNORE_INDEX
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = has_target
    return positions, following[has_target]


def target_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of `logits` `[n, V]`, the LM head at `next_token_targets`' positions, against its
    `targets` `[n]`, in fp32; a zero that keeps the graph when n is 0."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ObjectiveInputError(f"label_smoothing: expected a value in [0, 1), got {label_smoothing}")
    total = F.cross_entropy(upcast(logits), targets, label_smoothing=label_smoothing, reduction="sum")
    return total / max(targets.numel(), 1)


def generation_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean next-token cross-entropy: the logits at position t are scored against label t + 1.

    Args:
        logits: `[B, L, V]` LM-head outputs at the text positions.
        labels: `[B, L]` from `prepare_generation_inputs`; -100 marks positions without a target.
        label_smoothing: passed to the cross-entropy (0 disables it).

    Returns:
        The mean over target tokens; a zero that keeps the graph when there is none.
    """
    require_dims("logits", logits, 3, "[B, L, V]")
    require_integer("labels", labels)
    if labels.shape != logits.shape[:2]:
        raise ObjectiveInputError(
            f"labels: expected shape {tuple(logits.shape[:2])} to match logits, got {tuple(labels.shape)}"
        )
    positions, targets = next_token_targets(labels)
    return target_loss(logits[positions], targets, label_smoothing)
