"""Multi-head attention and the BERT-style post-LayerNorm attention block of the Bridge-Net.

The same block serves as self-attention (keys and values from the hidden states) and as
cross-attention (keys and values from the audio features, whose width may differ).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mint.bridge.config import ATTN_IMPLEMENTATIONS
from mint.bridge.dropout import Dropout, fast_dropout
from mint.errors import ConfigError


class MultiHeadAttention(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        key_value_size: int,
        attention_dropout: float,
        implementation: str,
    ) -> None:
        super().__init__()
        if implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"attn_implementation: expected one of {list(ATTN_IMPLEMENTATIONS)}, got {implementation!r}"
            )
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.attention_dropout = attention_dropout
        self.implementation = implementation
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(key_value_size, hidden_size)
        self.value = nn.Linear(key_value_size, hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`hidden` [B, Lq, H] attends to `context` [B, Lk, Dk]; `mask` is additive, [B, 1, Lq or 1, Lk]."""
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(context))
        v = self._split_heads(self.value(context))
        dropout_p = self.attention_dropout if self.training else 0.0

        if self.implementation == "sdpa" and (dropout_p == 0.0 or q.device.type != "cpu"):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            # Attention dropout on the CPU runs here, with mint's cheaper mask (SDPA would draw torch's).
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
            probs = fast_dropout(scores.softmax(dim=-1), dropout_p, self.training)
            out = torch.matmul(probs, v)

        batch, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)


class AttentionBlock(nn.Module):
    """Attention, output projection, dropout, then LayerNorm over the residual sum (BERT's order)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        key_value_size: int,
        dropout: float,
        attention_dropout: float,
        layer_norm_eps: float,
        implementation: str,
    ) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(
            hidden_size, num_heads, key_value_size, attention_dropout, implementation
        )
        self.output = nn.Linear(hidden_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, context, mask)
        return self.layer_norm(hidden + self.dropout(self.output(attended)))
