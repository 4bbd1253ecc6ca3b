"""Batched caption generation (stage 2) with vs without the LLM's key/value cache.

A MintModel of configs/instruct/tiny.yaml whose frozen LLM is a random-weight checkpoint of a real
model's shapes, with the MiniLM vocabulary (30,522 word pieces), saved to a temporary folder:

* Flan-T5-base (d_model 768, 12 + 12 layers, gated-GELU): the soft prompt and instruction go
  through the encoder once either way; without the cache the decoder re-runs every earlier
  response token (and the cross-attention keys and values of the encoder output) at every step.
* SmolLM-135M (a Llama: width 576, 9 heads, 3 key/value heads) with 10 of its 30 layers, to bound
  the baseline's time: without the cache the whole sequence, soft prompt and instruction included,
  is re-run at every step.

Each setting decodes exactly 30 new tokens per clip, so both ways do the same number of steps (timed
3 times each, interleaved, medians):
greedy for 8 clips (what this benchmark measured first), and the captioning runner's 5 beams
(`mint.evaluation.captioning.CaptionOptions`) for 8 clips, half its batch of 16, again to bound the
baseline's time. The baseline is the same `MintModel.generate` call with `use_cache=False`
(transformers' `generate` without a cache); the two outputs are compared.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from common import REPO, Comparison

if TYPE_CHECKING:
    from mint.modeling import MintModel

TOKENS = 30
FRAMES = 75
LLAMA_LAYERS = 10
TARGET = 3.0
ROUNDS = 3
INSTRUCTION = "describe the sound in a sentence"


@dataclass(frozen=True)
class Setting:
    clips: int
    beams: int

    @property
    def label(self) -> str:
        decoding = "greedy" if self.beams == 1 else f"{self.beams} beams"
        return f"{self.clips} clips, {decoding}, {TOKENS} tokens"


def _tokenizer():
    from transformers import AutoTokenizer

    from mint.bridge.tokenizer import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.bos_token = tokenizer.cls_token
    return tokenizer


def save_random_flan_t5_base(directory: Path) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = _tokenizer()
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


def save_random_smollm_135m(directory: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=LLAMA_LAYERS,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _timed(function: Callable[[], list[str]]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    texts = function()
    return time.perf_counter() - started, texts


def _measure(model: MintModel, name: str, setting: Setting) -> Comparison:
    features = torch.randn(setting.clips, FRAMES, model.encoder.hidden_size)
    audio = model.normalise_audio(features, torch.ones(setting.clips, FRAMES, dtype=torch.bool))
    instructions = [INSTRUCTION] * setting.clips

    def generate(use_cache: bool, tokens: int = TOKENS) -> list[str]:
        with torch.no_grad():
            return model.generate(
                audio,
                instructions,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                num_beams=setting.beams,
                use_cache=use_cache,
            )

    generate(True, tokens=2)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    outputs: dict[bool, list[str]] = {}
    for _ in range(ROUNDS):  # interleaved, so that a change of the machine's load hits both alike
        for use_cache in (False, True):
            seconds, outputs[use_cache] = _timed(functools.partial(generate, use_cache))
            times[use_cache].append(seconds)
    return Comparison(
        item=f"caption generation, {name}, {setting.label}",
        baseline="no KV cache",
        ours="KV cache",
        baseline_s=statistics.median(times[False]),
        ours_s=statistics.median(times[True]),
        target=TARGET,
        note=(
            f"medians of {ROUNDS} interleaved calls each; outputs identical with and without the cache: "
            f"{outputs[False] == outputs[True]}"
        ),
    )


def _compare(llm: Path, name: str, settings: tuple[Setting, ...]) -> list[Comparison]:
    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.training.config import InstructConfig

    config = load_config(
        InstructConfig, REPO / "configs/instruct/tiny.yaml", [f"model.llm.name_or_path={llm}"]
    )
    torch.manual_seed(0)
    model = MintModel.from_config(config.model).eval()
    return [_measure(model, name, setting) for setting in settings]


def run(work: Path) -> list[Comparison]:
    t5 = save_random_flan_t5_base(work / "flan-t5-base-random")
    llama = save_random_smollm_135m(work / "smollm-135m-random")
    return [
        *_compare(t5, "Flan-T5-base-shaped T5", (Setting(8, 1), Setting(8, 5))),
        *_compare(llama, f"SmolLM-135M-shaped Llama ({LLAMA_LAYERS} layers)", (Setting(8, 5),)),
    ]
