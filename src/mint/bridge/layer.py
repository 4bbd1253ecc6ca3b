"""One Bridge-Net layer: shared self-attention, cross-attention on query positions, split feed-forward."""

from __future__ import annotations

import torch
from torch import nn

from mint.bridge.attention import AttentionBlock
from mint.bridge.config import BridgeConfig
from mint.bridge.dropout import Dropout


class FeedForward(nn.Module):
    """BERT's feed-forward: expand, GELU, project back, dropout, LayerNorm over the residual sum."""

    def __init__(
        self, hidden_size: int, intermediate_size: int, dropout: float, layer_norm_eps: float
    ) -> None:
        super().__init__()
        self.dense_in = nn.Linear(hidden_size, intermediate_size)
        self.activation = nn.GELU()
        self.dense_out = nn.Linear(intermediate_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        expanded = self.activation(self.dense_in(hidden))
        return self.layer_norm(hidden + self.dropout(self.dense_out(expanded)))


def has_cross_attention(config: BridgeConfig, layer_idx: int) -> bool:
    return layer_idx % config.cross_attention_freq == 0


def audio_slice(config: BridgeConfig, layer_idx: int) -> tuple[int, int]:
    """The feature range `[start, end)` a cross-attention layer reads: the whole vector, or with
    `audio_part_bounds` the part of the encoder whose turn it is (encoders in turn, layer by layer)."""
    bounds = config.audio_part_bounds
    if not bounds:
        return 0, config.encoder_hidden_size
    part = (layer_idx // config.cross_attention_freq) % (len(bounds) - 1)
    return bounds[part], bounds[part + 1]


class BridgeLayer(nn.Module):
    def __init__(self, config: BridgeConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.audio_slice = audio_slice(config, layer_idx)
        self.self_attention = AttentionBlock(
            config.hidden_size,
            config.num_heads,
            config.hidden_size,
            config.dropout,
            config.attention_dropout,
            config.layer_norm_eps,
            config.attn_implementation,
        )
        self.cross_attention = (
            AttentionBlock(
                config.hidden_size,
                config.num_heads,
                self.audio_slice[1] - self.audio_slice[0],
                config.dropout,
                config.attention_dropout,
                config.layer_norm_eps,
                config.attn_implementation,
            )
            if has_cross_attention(config, layer_idx)
            else None
        )
        self.text_ffn = FeedForward(
            config.hidden_size, config.intermediate_size, config.dropout, config.layer_norm_eps
        )
        self.query_ffn = (
            FeedForward(config.hidden_size, config.intermediate_size, config.dropout, config.layer_norm_eps)
            if config.separate_query_ffn
            else None
        )

    def forward(
        self,
        hidden: torch.Tensor,
        self_mask: torch.Tensor,
        num_queries: int,
        audio: torch.Tensor | None,
        audio_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """`hidden` is [B, Nq + L, H] with the queries first; masks are additive.

        `audio` is required whenever `num_queries > 0`: the queries are the only way audio enters.
        """
        hidden = self.self_attention(hidden, hidden, self_mask)
        if num_queries == 0:
            return self.text_ffn(hidden)

        queries = hidden[:, :num_queries]
        if self.cross_attention is not None:
            start, end = self.audio_slice
            if end - start != audio.shape[-1]:
                audio = audio[..., start:end]
            queries = self.cross_attention(queries, audio, audio_mask)
        query_ffn = self.query_ffn if self.query_ffn is not None else self.text_ffn
        queries = query_ffn(queries)
        if hidden.shape[1] == num_queries:
            return queries
        text = self.text_ffn(hidden[:, num_queries:])
        return torch.cat([queries, text], dim=1)
