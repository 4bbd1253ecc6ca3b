"""Self-attention masks over the joint sequence [queries; text] for the three attention modes.

Stage-1 objectives differ only in who may look at whom inside the shared self-attention:

* UNIMODAL (contrastive): queries see queries, text sees text.
* BIDIRECTIONAL (matching, instruction-aware extraction): every position sees every position.
* CAUSAL (grounded generation): queries see queries only; text sees all queries and the text at
  its own and earlier positions.

Padded text positions are never attended to, in any mode.
"""

from __future__ import annotations

from enum import Enum

import torch

from mint.bridge.config import BridgeInputError


class AttentionMode(str, Enum):
    UNIMODAL = "unimodal"
    BIDIRECTIONAL = "bidirectional"
    CAUSAL = "causal"


def parse_mode(mode: AttentionMode | str) -> AttentionMode:
    try:
        return AttentionMode(mode)
    except ValueError:
        choices = [member.value for member in AttentionMode]
        raise BridgeInputError(f"mode: expected one of {choices}, got {mode!r}") from None


def build_attention_mask(
    mode: AttentionMode | str, num_queries: int, text_mask: torch.Tensor
) -> torch.Tensor:
    """Boolean mask [B, 1, Nq + L, Nq + L]; True where the row position may attend to the column position.

    `text_mask` is [B, L] with True (or 1) for real tokens; pass a [B, 0] tensor when there is no text.
    """
    mode = parse_mode(mode)
    batch_size, text_length = text_mask.shape
    device = text_mask.device
    length = num_queries + text_length
    position = torch.arange(length, device=device)
    is_query = position < num_queries
    row_is_query = is_query[:, None]
    col_is_query = is_query[None, :]

    if mode is AttentionMode.UNIMODAL:
        allowed = row_is_query == col_is_query
    elif mode is AttentionMode.BIDIRECTIONAL:
        allowed = torch.ones(length, length, dtype=torch.bool, device=device)
    else:
        text_sees = ~row_is_query & (col_is_query | (position[None, :] <= position[:, None]))
        allowed = (row_is_query & col_is_query) | text_sees

    key_is_real = torch.cat(
        [torch.ones(batch_size, num_queries, dtype=torch.bool, device=device), text_mask.bool()], dim=1
    )
    return allowed[None, None, :, :] & key_is_real[:, None, None, :]


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where attention is allowed, the dtype's most negative value elsewhere.

    A large finite value rather than -inf keeps a row with nothing to attend to (e.g. an all-padding
    text) finite: it turns into a uniform distribution, as in BERT, instead of NaN.
    """
    zeros = torch.zeros((), dtype=dtype, device=allowed.device)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zeros, blocked)
