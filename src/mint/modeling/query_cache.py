"""The Bridge-Net's query pass with its per-layer query states kept, and a text pass that reads them.

ATC reads the audio with queries that see only queries. ATG's attention mask lets the queries see only
queries too, so a joint ATG pass recomputes, layer for layer, exactly the query states of the ATC pass
(self-attention, cross-attention over every audio frame, query feed-forward) only for the text positions
to attend to them. BLIP-2 instead keeps the query keys and values of its contrastive pass and runs the
caption alone against them; `text_over_queries` does the same with the states each layer's
self-attention projects to keys and values. Outputs and gradients equal the joint pass's (the states
are the same tensors, in the same graph).

Both passes walk the Bridge-Net's own layers and blocks (`BridgeNet.forward` does the same for a joint
sequence); `tests/modeling` checks them against it.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from mint.bridge import AttentionMode, BridgeInputError, BridgeNet
from mint.bridge.layer import BridgeLayer
from mint.bridge.masks import additive_mask, build_attention_mask
from mint.modeling.outputs import AudioFeatures, QueryPass


def _checkpointing(bridge: BridgeNet) -> bool:
    return bridge.gradient_checkpointing and bridge.training and torch.is_grad_enabled()


def query_pass(bridge: BridgeNet, audio: AudioFeatures) -> QueryPass:
    """The query outputs [B, Nq, H] of the queries alone reading `audio`, and each layer's query input."""
    expected = bridge.config.encoder_hidden_size
    if audio.features.dim() != 3 or audio.features.shape[-1] != expected:
        raise BridgeInputError(
            f"audio_features: expected shape [B, T, {expected}], got {list(audio.features.shape)}"
        )
    if audio.mask.shape != audio.features.shape[:2]:
        raise BridgeInputError(
            f"audio_mask: expected shape {list(audio.features.shape[:2])}, got {list(audio.mask.shape)}"
        )
    batch = audio.features.shape[0]
    num_queries = bridge.config.num_queries
    hidden = bridge.embeddings(bridge.queries.expand(batch, -1, -1), None)
    dtype, device = hidden.dtype, hidden.device
    no_text = torch.ones(batch, 0, dtype=torch.bool, device=device)
    self_mask = additive_mask(build_attention_mask(AttentionMode.UNIMODAL, num_queries, no_text), dtype)
    cross_mask = additive_mask(audio.mask.bool()[:, None, None, :], dtype)
    features = audio.features.to(dtype)
    states = []
    for layer in bridge.layers:
        states.append(hidden)
        if _checkpointing(bridge):
            hidden = checkpoint(
                layer, hidden, self_mask, num_queries, features, cross_mask, use_reentrant=False
            )
        else:
            hidden = layer(hidden, self_mask, num_queries, features, cross_mask)
    return QueryPass(hidden, states)


def _text_layer(
    layer: BridgeLayer, text: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """A layer's text positions: self-attention over [queries; text] (the mask says which), text feed-forward.
    Text positions never cross-attend, so this is all a layer does to them."""
    attended = layer.self_attention(text, torch.cat([queries, text], dim=1), mask)
    return layer.text_ffn(attended)


def text_over_queries(
    bridge: BridgeNet, queries: QueryPass, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Text outputs [B, L, H] of the causal (ATG) mode: each text position sees every query and the text at
    its own and earlier positions, the queries being `queries.states` rather than a pass of their own."""
    num_queries = bridge.config.num_queries
    if len(queries.states) != len(bridge.layers):
        raise BridgeInputError(
            f"queries: {len(queries.states)} layer states for a Bridge-Net of {len(bridge.layers)} layers"
        )
    hidden = bridge.embeddings(None, input_ids)
    joint = build_attention_mask(AttentionMode.CAUSAL, num_queries, attention_mask.bool())
    mask = additive_mask(joint[:, :, num_queries:, :], hidden.dtype)
    for layer, states in zip(bridge.layers, queries.states, strict=True):
        if _checkpointing(bridge):
            hidden = checkpoint(_text_layer, layer, hidden, states, mask, use_reentrant=False)
        else:
            hidden = _text_layer(layer, hidden, states, mask)
    return hidden
