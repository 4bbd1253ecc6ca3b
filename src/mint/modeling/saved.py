"""The saved-model directory: its file names, reading its config, and whether a saved stage-1 model can
warm-start a stage-2 model.

A directory written by `MintModel.save_pretrained` holds `config.json` (the MintConfig, with the frozen
encoder and LLM referenced by hub id or absolute path), `model.safetensors` (the model's own weights),
`tokenizer/` (the Bridge-Net tokenizer), `lora/` (the LLM's LoRA adapter, only when on) and
`digests.json` (SHA-256 of every file).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from mint.config import config_to_dict, from_dict
from mint.errors import CheckpointError
from mint.modeling.config import MintConfig
from mint.storage import verify_digests

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
LORA_DIR = "lora"
FORMAT_VERSION = 1
# Bridge-Net settings that fix its tensors' shapes: a stage-1 model warm-starts stage 2 only if they agree.
BRIDGE_SHAPE_FIELDS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "num_queries",
    "cross_attention_freq",
    "encoder_hidden_size",
    "audio_part_bounds",
    "vocab_size",
    "max_position_embeddings",
    "separate_query_ffn",
)
# Weights that belong to stage 2 alone, never taken from the model stage 2 starts from.
STAGE2_PREFIXES = ("llm_proj.", "window_position", "retrieval_bridge.")


def portable_reference(name_or_path: str | None) -> str | None:
    """Local directories are stored as absolute paths so the saved model loads from anywhere."""
    if name_or_path and Path(name_or_path).exists():
        return str(Path(name_or_path).resolve())
    return name_or_path


def read_saved_config(directory: Path) -> MintConfig:
    """The config of a directory written by `save_pretrained`, after checking its files' digests."""
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: not a saved MINT model (no {CONFIG_NAME})")
    verify_digests(directory)
    payload = json.loads(config_path.read_text())
    if payload.get("model_type") != "mint":
        raise CheckpointError(f"{config_path}: model_type is {payload.get('model_type')!r}, expected 'mint'")
    return from_dict(MintConfig, payload["config"], where="config")


def check_warm_start(own: MintConfig, saved: MintConfig, directory: Path) -> None:
    """Refuse a stage-1 model whose encoder or Bridge-Net shapes differ from the config's, naming the key."""
    mine, theirs = config_to_dict(own.encoder), config_to_dict(saved.encoder)
    # Precision and code trust do not change what the encoder computes enough to matter for the weights.
    for key in sorted(set(mine) - {"dtype", "trust_remote_code"}):
        a, b = mine[key], theirs.get(key)
        if key == "name_or_path":
            a, b = portable_reference(a), portable_reference(b)
        if a != b:
            raise CheckpointError(
                f"init_from={directory}: model.encoder.{key} is {a!r} here but {b!r} in the stage-1 model; "
                "its Bridge-Net was trained on another encoder's features"
            )
    for key in BRIDGE_SHAPE_FIELDS:
        a, b = getattr(own.bridge, key), getattr(saved.bridge, key)
        if a != b:
            raise CheckpointError(
                f"init_from={directory}: model.bridge.{key} is {a!r} here but {b!r} in the stage-1 model"
            )


def stage1_weights(
    own_config: MintConfig, own_state: dict[str, torch.Tensor], directory: Path
) -> dict[str, torch.Tensor]:
    """The LayerNorm, Bridge-Net and head weights of the saved model in `directory`, checked against
    `own_state` (the warm-started model's `trainable_state_dict()`): same names, same shapes."""
    check_warm_start(own_config, read_saved_config(directory), directory)
    path = directory / WEIGHTS_NAME
    state = {name: t for name, t in load_file(str(path)).items() if not name.startswith(STAGE2_PREFIXES)}
    own = {name: t for name, t in own_state.items() if not name.startswith(STAGE2_PREFIXES)}
    if set(state) != set(own):
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise CheckpointError(
            f"{path}: its tensors differ from this model's (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    shapes = [
        f"{n} {tuple(state[n].shape)} vs {tuple(t.shape)}"
        for n, t in own.items()
        if state[n].shape != t.shape
    ]
    if shapes:
        raise CheckpointError(f"{path}: tensor shapes differ from this model's: {shapes[:5]}")
    return state
