"""Shared helpers of the Bridge-Net tests: tiny Bridge-Nets and tiny random BERT checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import BertConfig, PreTrainedModel

from mint.bridge import BridgeConfig, BridgeNet

HIDDEN = 32
HEADS = 4
INTERMEDIATE = 64
VOCAB = 60
MAX_POSITIONS = 24
AUDIO_DIM = 16
NUM_QUERIES = 4


def tiny_config(**overrides: object) -> BridgeConfig:
    base = BridgeConfig(
        hidden_size=HIDDEN,
        num_layers=4,
        num_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        num_queries=NUM_QUERIES,
        cross_attention_freq=2,
        encoder_hidden_size=AUDIO_DIM,
        vocab_size=VOCAB,
        max_position_embeddings=MAX_POSITIONS,
        dropout=0.0,
        attention_dropout=0.0,
    )
    return dataclasses.replace(base, **overrides)


def tiny_bridge(seed: int = 0, **overrides: object) -> BridgeNet:
    torch.manual_seed(seed)
    bridge = BridgeNet(tiny_config(**overrides)).eval()
    randomise(bridge, seed)
    return bridge


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Distinct random values everywhere, so no zero bias or unit LayerNorm hides a wrong wiring."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=generator) * 0.1
                is_norm_scale = isinstance(module, torch.nn.LayerNorm) and name == "weight"
                param.copy_(noise + 1.0 if is_norm_scale else noise)


def tiny_bert_config(**overrides: object) -> BertConfig:
    values: dict[str, object] = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    values.update(overrides)
    return BertConfig(**values)


def save_bert(
    model_class: type[PreTrainedModel], directory: Path, **overrides: object
) -> tuple[PreTrainedModel, Path]:
    """A tiny random HF BERT of `model_class`, saved to `directory`; returns (model in eval mode, directory)."""
    torch.manual_seed(0)
    model = model_class(tiny_bert_config(**overrides)).eval()
    randomise(model, seed=1)
    model.save_pretrained(directory)
    return model, directory


def random_inputs(
    seed: int = 0, batch: int = 2, frames: int = 7, length: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(audio [B, T, D], audio_mask [B, T], input_ids [B, L], attention_mask [B, L]) with some padding."""
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, frames, AUDIO_DIM, generator=generator)
    audio_mask = torch.ones(batch, frames, dtype=torch.bool)
    audio_mask[1, frames - 2 :] = False
    input_ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[1, length - 2 :] = 0
    return audio, audio_mask, input_ids, attention_mask
