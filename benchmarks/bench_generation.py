"""Batched caption generation (stage 2) with vs without the LLM's key/value cache.

A MintModel of configs/instruct/tiny.yaml whose frozen LLM is a Flan-T5-base-shaped T5 (d_model
768, 12 + 12 layers, gated-GELU) with random weights and the MiniLM vocabulary, saved to a
temporary folder. Greedy decoding of exactly 30 new tokens for a batch of clips, so both ways
produce the same number of tokens; the outputs are compared.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import REPO, Comparison

BATCH = 8
TOKENS = 30
FRAMES = 75


def save_random_flan_t5_base(directory: Path) -> Path:
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from mint.bridge.tokenizer import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    tokenizer.eos_token = tokenizer.sep_token
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=768,
        d_kv=64,
        d_ff=2048,
        num_layers=12,
        num_decoder_layers=12,
        num_heads=12,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def run(work: Path) -> list[Comparison]:
    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.training.config import InstructConfig

    llm = save_random_flan_t5_base(work / "flan-t5-base-random")
    config = load_config(
        InstructConfig, REPO / "configs/instruct/tiny.yaml", [f"model.llm.name_or_path={llm}"]
    )
    torch.manual_seed(0)
    model = MintModel.from_config(config.model).eval()
    features = torch.randn(BATCH, FRAMES, model.encoder.hidden_size)
    audio = model.normalise_audio(features, torch.ones(BATCH, FRAMES, dtype=torch.bool))
    instructions = ["describe the sound in a sentence"] * BATCH

    def generate(use_cache: bool, tokens: int = TOKENS) -> list[str]:
        with torch.no_grad():
            return model.generate(
                audio, instructions, max_new_tokens=tokens, min_new_tokens=tokens, use_cache=use_cache
            )

    generate(True, tokens=2)  # warm-up
    seconds, outputs = {}, {}
    for use_cache in (False, True):
        started = time.perf_counter()
        outputs[use_cache] = generate(use_cache)
        seconds[use_cache] = time.perf_counter() - started
    return [
        Comparison(
            item=f"caption generation, batch {BATCH} x {TOKENS} tokens, Flan-T5-base-shaped LLM",
            baseline="no KV cache",
            ours="KV cache",
            baseline_s=seconds[False],
            ours_s=seconds[True],
            target=3.0,
            note=f"one timed call each; greedy outputs identical with and without the cache: "
            f"{outputs[False] == outputs[True]}",
        )
    ]
