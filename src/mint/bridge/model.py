"""The Bridge-Net: learnable queries and text tokens through shared BERT layers, queries reading the audio.

The sequence inside is [queries; text]. Queries carry no position embedding; text gets BERT's word,
absolute-position and token-type-0 embeddings. Without queries the network is exactly a BERT encoder,
which is what lets it start from a BERT checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mint.bridge.config import BridgeConfig, BridgeInputError
from mint.bridge.dropout import Dropout
from mint.bridge.heads import BridgeLMHead
from mint.bridge.layer import BridgeLayer
from mint.bridge.masks import AttentionMode, additive_mask, build_attention_mask, parse_mode

INIT_STD = 0.02


@dataclass
class BridgeOutput:
    query_output: torch.Tensor | None
    text_output: torch.Tensor | None


class BridgeEmbeddings(nn.Module):
    def __init__(self, config: BridgeConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        # Every text token has BERT token type 0, so only that one row of BERT's table is kept.
        self.token_type_embedding = nn.Parameter(torch.zeros(config.hidden_size))
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, queries: torch.Tensor | None, input_ids: torch.Tensor | None) -> torch.Tensor:
        parts = [] if queries is None else [queries]
        if input_ids is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            text = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
            parts.append(text + self.token_type_embedding)
        return self.dropout(self.layer_norm(torch.cat(parts, dim=1)))


def init_bert_style(module: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, identity LayerNorms, zero pad row."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class BridgeNet(nn.Module):
    def __init__(self, config: BridgeConfig) -> None:
        super().__init__()
        self.config = config
        # A training switch, not part of the architecture: the trainers set it from trainer.gradient_checkpointing.
        self.gradient_checkpointing = config.gradient_checkpointing
        self.queries = nn.Parameter(torch.empty(1, config.num_queries, config.hidden_size))
        self.embeddings = BridgeEmbeddings(config)
        self.layers = nn.ModuleList(BridgeLayer(config, i) for i in range(config.num_layers))
        self.lm_head = BridgeLMHead(config.hidden_size, config.vocab_size, config.layer_norm_eps)
        self.apply(init_bert_style)
        nn.init.normal_(self.queries, std=INIT_STD)
        nn.init.normal_(self.embeddings.token_type_embedding, std=INIT_STD)

    def forward(
        self,
        audio_features: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mode: AttentionMode | str = AttentionMode.UNIMODAL,
        use_queries: bool = True,
    ) -> BridgeOutput:
        """Encode queries (reading `audio_features` [B, T, Da]) and/or text `input_ids` [B, L].

        `audio_mask` [B, T] and `attention_mask` [B, L] are True/1 for real frames/tokens.
        """
        mode = parse_mode(mode)
        batch_size = self._check_inputs(audio_features, audio_mask, input_ids, attention_mask, use_queries)
        num_queries = self.config.num_queries if use_queries else 0

        queries = self.queries.expand(batch_size, -1, -1) if use_queries else None
        hidden = self.embeddings(queries, input_ids)
        device, dtype = hidden.device, hidden.dtype

        if input_ids is None:
            text_mask = torch.ones(batch_size, 0, dtype=torch.bool, device=device)
        elif attention_mask is None:
            text_mask = torch.ones(input_ids.shape, dtype=torch.bool, device=device)
        else:
            text_mask = attention_mask.bool()
        self_mask = additive_mask(build_attention_mask(mode, num_queries, text_mask), dtype)

        audio = cross_mask = None
        if audio_features is not None:
            audio = audio_features.to(dtype)
            frames = (
                torch.ones(audio.shape[:2], dtype=torch.bool, device=device)
                if audio_mask is None
                else audio_mask.bool()
            )
            cross_mask = additive_mask(frames[:, None, None, :], dtype)

        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if checkpointing:
                hidden = checkpoint(
                    layer, hidden, self_mask, num_queries, audio, cross_mask, use_reentrant=False
                )
            else:
                hidden = layer(hidden, self_mask, num_queries, audio, cross_mask)

        return BridgeOutput(
            query_output=hidden[:, :num_queries] if use_queries else None,
            text_output=hidden[:, num_queries:] if input_ids is not None else None,
        )

    def _check_inputs(
        self,
        audio_features: torch.Tensor | None,
        audio_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        use_queries: bool,
    ) -> int:
        """Validate shapes and the combination of inputs; return the batch size."""
        if use_queries and audio_features is None:
            raise BridgeInputError("audio_features: required when use_queries=True (queries read the audio)")
        if not use_queries and audio_features is not None:
            raise BridgeInputError(
                "audio_features: given with use_queries=False, but audio reaches the Bridge-Net only "
                "through the queries"
            )
        if not use_queries and input_ids is None:
            raise BridgeInputError("input_ids: required when use_queries=False (nothing else to encode)")

        batch_sizes = set()
        if audio_features is not None:
            expected = self.config.encoder_hidden_size
            if audio_features.dim() != 3 or audio_features.shape[-1] != expected:
                raise BridgeInputError(
                    f"audio_features: expected shape [B, T, {expected}], got {list(audio_features.shape)}"
                )
            batch_sizes.add(audio_features.shape[0])
            if audio_mask is not None and audio_mask.shape != audio_features.shape[:2]:
                raise BridgeInputError(
                    f"audio_mask: expected shape {list(audio_features.shape[:2])}, got {list(audio_mask.shape)}"
                )
        elif audio_mask is not None:
            raise BridgeInputError("audio_mask: given without audio_features")

        if input_ids is not None:
            if input_ids.dim() != 2:
                raise BridgeInputError(f"input_ids: expected shape [B, L], got {list(input_ids.shape)}")
            if input_ids.shape[1] > self.config.max_position_embeddings:
                raise BridgeInputError(
                    f"input_ids: {input_ids.shape[1]} tokens exceed max_position_embeddings="
                    f"{self.config.max_position_embeddings}"
                )
            vocab_size = self.embeddings.word_embeddings.num_embeddings
            if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
                raise BridgeInputError(f"input_ids: expected token ids in [0, {vocab_size})")
            if attention_mask is not None and attention_mask.shape != input_ids.shape:
                raise BridgeInputError(
                    f"attention_mask: expected shape {list(input_ids.shape)}, got {list(attention_mask.shape)}"
                )
            batch_sizes.add(input_ids.shape[0])
        elif attention_mask is not None:
            raise BridgeInputError("attention_mask: given without input_ids")

        if len(batch_sizes) != 1:
            raise BridgeInputError(
                f"audio_features and input_ids: batch sizes differ ({sorted(batch_sizes)})"
            )
        return batch_sizes.pop()

    def lm_logits(self, text_output: torch.Tensor) -> torch.Tensor:
        """Next-token logits [..., V] from text outputs [..., H], through the head tied to the word embeddings."""
        return self.lm_head(text_output, self.embeddings.word_embeddings.weight)

    def resize_token_embeddings(self, vocab_size: int) -> None:
        """Grow or shrink the vocabulary (word embeddings and LM-head bias); new rows are freshly initialised."""
        new_config = dataclasses.replace(self.config, vocab_size=vocab_size)
        old = self.embeddings.word_embeddings
        new = nn.Embedding(
            vocab_size,
            self.config.hidden_size,
            padding_idx=self.config.pad_token_id,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        init_bert_style(new)
        kept = min(vocab_size, old.num_embeddings)
        with torch.no_grad():
            new.weight[:kept] = old.weight[:kept]
        new.weight.requires_grad_(old.weight.requires_grad)
        self.embeddings.word_embeddings = new
        self.lm_head.resize(vocab_size)
        self.config = new_config
