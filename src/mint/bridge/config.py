"""Configuration of the Bridge-Net (the Q-Former-style transformer between audio encoder and LLM)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mint.errors import ConfigError, MintError

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
INIT_SOURCES = ("scratch", "bert", "minilm")


class BridgeInputError(MintError, ValueError):
    """A tensor or argument given to the Bridge-Net has the wrong shape, type or value."""


# The dotted key under which the Bridge-Net config sits in a model config, so errors point at the
# line of the YAML file to fix.
_WHERE = "model.bridge"


@dataclass(frozen=True)
class BridgeConfig:
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    num_queries: int = 32
    # Cross-attention to the audio sits in the layers whose index is a multiple of this.
    cross_attention_freq: int = 2
    # Width of the audio features; the model sets it from the audio encoder.
    encoder_hidden_size: int = 768
    # Separate cross-attention per encoder of a fused model (`model.encoder_fusion: separate`; the model
    # sets it): boundaries (0, D_1, D_1 + D_2, ...) of each encoder's features in the vector, and the k-th
    # cross-attention layer reads encoder k modulo their number. Empty: every layer reads all of it.
    audio_part_bounds: tuple[int, ...] = ()
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    attention_dropout: float = 0.1
    # Query positions get their own feed-forward weights (BLIP-2), text positions keep BERT's.
    separate_query_ffn: bool = True
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    init: str = "scratch"
    init_path: str | None = None
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "num_queries",
            "cross_attention_freq",
            "encoder_hidden_size",
            "vocab_size",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{_WHERE}.{name}: expected a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads != 0:
            raise ConfigError(
                f"{_WHERE}.num_heads: expected a divisor of hidden_size={self.hidden_size}, "
                f"got {self.num_heads}"
            )
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"{_WHERE}.layer_norm_eps: expected > 0, got {self.layer_norm_eps!r}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{_WHERE}.{name}: expected a probability in [0, 1), got {value!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"{_WHERE}.attn_implementation: expected one of {list(ATTN_IMPLEMENTATIONS)}, "
                f"got {self.attn_implementation!r}"
            )
        bounds = self.audio_part_bounds
        if bounds and (
            len(bounds) < 3
            or bounds[0] != 0
            or bounds[-1] != self.encoder_hidden_size
            or any(low >= high for low, high in itertools.pairwise(bounds))
        ):
            raise ConfigError(
                f"{_WHERE}.audio_part_bounds: expected increasing bounds from 0 to encoder_hidden_size="
                f"{self.encoder_hidden_size} around two or more parts, got {bounds!r}"
            )
        if self.init not in INIT_SOURCES:
            raise ConfigError(f"{_WHERE}.init: expected one of {list(INIT_SOURCES)}, got {self.init!r}")
        if self.init == "bert" and not self.init_path:
            raise ConfigError(
                f"{_WHERE}.init_path: init='bert' needs the path of a local BERT checkpoint directory"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(
                f"{_WHERE}.pad_token_id: expected within [0, vocab_size={self.vocab_size}), "
                f"got {self.pad_token_id!r}"
            )
