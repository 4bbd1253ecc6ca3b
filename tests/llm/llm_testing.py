"""Shared helpers of the LLM adapter tests: tiny random T5 / Llama / GPT-2 checkpoints with a word-level
tokenizer, written to a folder and loaded back offline through `load_llm`."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from mint.llm import LLMAdapter, LLMConfig, load_llm

HIDDEN = 32
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]
PAD, EOS, UNK, BOS = range(4)
WORDS = [
    "a",
    "the",
    "dog",
    "cat",
    "bird",
    "cow",
    "car",
    "horn",
    "siren",
    "rain",
    "wind",
    "engine",
    "barks",
    "meows",
    "sings",
    "moos",
    "honks",
    "wails",
    "falls",
    "blows",
    "roars",
    "loud",
    "soft",
    "far",
    "near",
    "what",
    "is",
    "this",
    "sound",
    "describe",
    "name",
    "source",
    "answer",
    "briefly",
    "in",
    "words",
]
VOCAB = {token: index for index, token in enumerate(SPECIALS + WORDS)}


def word_tokenizer(prompt_markers: str, with_pad: bool = True) -> PreTrainedTokenizerFast:
    """Whitespace word-level tokenizer. `prompt_markers`: "eos" appends `</s>` to encoded text (T5),
    "bos" prepends `<s>` (Llama), "none" adds nothing (GPT-2)."""
    backend = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if prompt_markers == "eos":
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", EOS)]
        )
    elif prompt_markers == "bos":
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    specials = {"eos_token": "</s>", "unk_token": "<unk>", "bos_token": "<s>"}
    if with_pad:
        specials["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials)


def tiny_t5() -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    config = T5Config(
        vocab_size=len(VOCAB),
        d_model=HIDDEN,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        # Flan-T5's layout: gated feed-forward, decoder outputs not scaled down before the (tied) head.
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.1,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    return T5ForConditionalGeneration(config), word_tokenizer("eos")


def tiny_llama() -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    config = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        # Wider than Llama's 0.02 so that a soft prompt can move the tiny model's outputs far.
        initializer_range=0.3,
        attention_dropout=0.1,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    return LlamaForCausalLM(config), word_tokenizer("bos")


def tiny_gpt2() -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    config = GPT2Config(
        vocab_size=len(VOCAB),
        n_embd=HIDDEN,
        n_layer=2,
        n_head=4,
        n_positions=128,
        initializer_range=0.3,
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    return GPT2LMHeadModel(config), word_tokenizer("none", with_pad=False)


BUILDERS = {"t5": tiny_t5, "llama": tiny_llama, "gpt2": tiny_gpt2}


def save_tiny(name: str, folder: Path, seed: int = 0) -> Path:
    """Write a tiny random checkpoint + tokenizer to `folder/name` and return that directory."""
    torch.manual_seed(seed)
    model, tokenizer = BUILDERS[name]()
    target = folder / name
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def load_tiny(directory: Path, **overrides: object) -> LLMAdapter:
    return load_llm(LLMConfig(name_or_path=str(directory), **overrides))


def soft_prompt(batch: int, queries: int = 3, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, queries, HIDDEN, generator=generator) * scale


def words(text: str) -> list[int]:
    """Word ids straight from the vocabulary, without the Hugging Face tokenizer."""
    return [VOCAB.get(word, UNK) for word in text.split()]


def prompt_ids(name: str, text: str) -> list[int]:
    """The instruction with each tiny tokenizer's own markers (T5 closes with </s>, Llama opens with <s>)."""
    return {"t5": [*words(text), EOS], "llama": [BOS, *words(text)], "gpt2": words(text)}[name]


def next_token_logits(
    adapter: LLMAdapter, name: str, prompt: torch.Tensor, instruction: str, answer: list[int]
):
    """Logits [len(answer) + 1, V]: before each token of `answer` and after the last one, from one unpadded,
    unmasked, uncached forward of this single row ([Nq, D] soft prompt) on the bare transformers model."""
    model = adapter.model
    embed = model.get_input_embeddings()
    text = torch.tensor(prompt_ids(name, instruction), dtype=torch.long)
    answer_ids = torch.tensor(answer, dtype=torch.long)
    if name == "t5":
        encoder_input = torch.cat([prompt, embed(text)]).unsqueeze(0)
        decoder_input = torch.cat([torch.tensor([model.config.decoder_start_token_id]), answer_ids])
        return model(inputs_embeds=encoder_input, decoder_input_ids=decoder_input.unsqueeze(0)).logits[0]
    sequence = torch.cat([prompt, embed(text), embed(answer_ids)]).unsqueeze(0)
    return model(inputs_embeds=sequence).logits[0, prompt.shape[0] + len(text) - 1 :]


def reference_logprobs(adapter: LLMAdapter, name: str, prompt: torch.Tensor, instruction: str, response: str):
    """Log-probability (float64) of each response token and the closing eos, per `next_token_logits`."""
    answer = [*words(response), EOS]
    logits = next_token_logits(adapter, name, prompt, instruction, answer[:-1])
    return torch.log_softmax(logits.double(), dim=-1)[torch.arange(len(answer)), torch.tensor(answer)]


def reference_greedy(
    adapter: LLMAdapter,
    name: str,
    prompt: torch.Tensor,
    instruction: str,
    max_new_tokens: int,
    min_new_tokens: int = 0,
) -> list[int]:
    """Greedy decoding of one row by re-running the whole unpadded sequence for every token (no cache)."""
    answer: list[int] = []
    with torch.no_grad():
        while len(answer) < max_new_tokens:
            logits = next_token_logits(adapter, name, prompt, instruction, answer)[-1]
            if len(answer) < min_new_tokens:
                logits[EOS] = float("-inf")
            token = int(logits.argmax())
            answer.append(token)
            if token == EOS:
                break
    return answer


def until_eos(ids: list[int]) -> list[int]:
    """The ids up to and including the first eos."""
    return ids[: ids.index(EOS) + 1] if EOS in ids else ids
