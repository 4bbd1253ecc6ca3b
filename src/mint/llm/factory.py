"""`load_llm`: the one place that loads an LLM and its tokenizer (a local directory, a hub id, named weights
`weights:NAME` or a GGUF file, see `mint.weights`, or a tiny seeded random model named `random:llama` /
`random:t5`, see `mint.llm.random_llm`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mint.errors import CheckpointError, ConfigError
from mint.hardware import torch_dtype
from mint.llm.base import LLMAdapter
from mint.llm.causal import CausalAdapter
from mint.llm.config import CAUSAL, SEQ2SEQ, LLMConfig
from mint.llm.random_llm import build_random_llm, is_random_reference
from mint.llm.seq2seq import Seq2SeqAdapter
from mint.weights import resolve_weights


def _remote_code(config: LLMConfig) -> dict:
    # Always explicit: left unset, transformers asks on the terminal whether to run a checkpoint's
    # custom code, and a "y" on stdin would run it although the config says no.
    return {"trust_remote_code": config.trust_remote_code}


def _resolve_kind(config: LLMConfig, model_config: Any) -> str:
    detected = SEQ2SEQ if getattr(model_config, "is_encoder_decoder", False) else CAUSAL
    if config.kind not in ("auto", detected):
        raise ConfigError(
            f"llm.kind={config.kind!r}, but {config.name_or_path!r} holds a {detected} model "
            f"(model_type {getattr(model_config, 'model_type', None)!r})"
        )
    return detected


def _load_tokenizer(config: LLMConfig, source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **_remote_code(config))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"llm.name_or_path={config.name_or_path!r}: cannot load a tokenizer: {error}"
        ) from error
    if tokenizer.eos_token_id is None:
        raise CheckpointError(
            f"llm.name_or_path={config.name_or_path!r}: the tokenizer has no end-of-sequence token, which "
            "closes every response"
        )
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out, so reusing eos needs no new embedding row.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _with_attention(model: nn.Module, config: LLMConfig) -> nn.Module:
    """`model` with the attention kernel `config.attn_implementation` asks for (unchanged when None)."""
    if config.attn_implementation is not None:
        model.set_attn_implementation(config.attn_implementation)
    return model


def load_llm(config: LLMConfig) -> LLMAdapter:
    """Load the frozen LLM named by `config` and wrap it in the adapter for its kind."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    config.validate()
    if is_random_reference(config.name_or_path):
        model, tokenizer = build_random_llm(config.name_or_path)
        kind = _resolve_kind(config, model.config)
        adapter_class = Seq2SeqAdapter if kind == SEQ2SEQ else CausalAdapter
        return adapter_class(
            _with_attention(model.to(torch_dtype(config.dtype, "llm.dtype")), config), tokenizer, config
        )
    # The adapter keeps the config as written (a saved model stays portable); loading reads the directory
    # the reference resolves to.
    source = resolve_weights(config.name_or_path, "llm")
    try:
        model_config = AutoConfig.from_pretrained(source, **_remote_code(config))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"llm.name_or_path={config.name_or_path!r}: cannot load a model config: {error}"
        ) from error
    kind = _resolve_kind(config, model_config)
    model_class = AutoModelForSeq2SeqLM if kind == SEQ2SEQ else AutoModelForCausalLM
    try:
        model, info = model_class.from_pretrained(
            source,
            config=model_config,
            dtype=torch_dtype(config.dtype, "llm.dtype"),
            output_loading_info=True,
            **_remote_code(config),
        )
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"llm.name_or_path={config.name_or_path!r}: cannot load {model_class.__name__} weights: {error}"
        ) from error
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise CheckpointError(
            f"llm.name_or_path={config.name_or_path!r}: the checkpoint lacks {len(missing)} weights "
            f"(e.g. {missing[:3]}); they would be left random"
        )
    adapter_class = Seq2SeqAdapter if kind == SEQ2SEQ else CausalAdapter
    return adapter_class(_with_attention(model, config), _load_tokenizer(config, source), config)
