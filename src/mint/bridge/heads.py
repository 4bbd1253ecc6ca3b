"""The Bridge-Net's language-model head, used by audio-grounded text generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BridgeLMHead(nn.Module):
    """BERT's prediction head: dense, GELU, LayerNorm, then a decoder tied to the word embeddings.

    The tied decoder weight is passed to `forward` rather than stored here, so the state dict holds
    the embedding matrix once and resizing the vocabulary cannot break the tie.
    """

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.GELU()
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """Logits [..., V] from hidden states [..., H] and the word-embedding matrix [V, H]."""
        transformed = self.layer_norm(self.activation(self.dense(hidden)))
        return F.linear(transformed, word_embeddings, self.bias)

    def resize(self, vocab_size: int) -> None:
        """Keep the biases of the first `min(old, new)` tokens; new tokens start at zero."""
        old = self.bias.data
        new = torch.zeros(vocab_size, dtype=old.dtype, device=old.device)
        kept = min(vocab_size, old.shape[0])
        new[:kept] = old[:kept]
        self.bias = nn.Parameter(new, requires_grad=self.bias.requires_grad)
