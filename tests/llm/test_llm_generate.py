"""Generation on untrained tiny LLMs against a hand-written greedy loop (one row at a time, no padding,
no cache), and the limits every decoding mode must respect."""

from __future__ import annotations

import logging

import pytest
import torch
from llm_testing import EOS, SPECIALS, VOCAB, load_tiny, reference_greedy, soft_prompt, until_eos
from transformers.utils import logging as hf_logging

from mint.llm import LLMInputError

# Different lengths, so a decoder-only batch is left padded.
INSTRUCTIONS = ["describe the sound", "what", "name the source of this sound briefly in words"]
WORD_OF = {index: word for word, index in VOCAB.items()}


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_greedy_generation_equals_reference_loop(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4, seed=3, scale=2.0)
    ids = adapter.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=6, min_new_tokens=2)
    texts = adapter.generate(prompt, INSTRUCTIONS, max_new_tokens=6, min_new_tokens=2)
    for row, instruction in enumerate(INSTRUCTIONS):
        expected = reference_greedy(adapter, name, prompt[row], instruction, 6, 2)
        generated = ids[row].tolist()
        assert until_eos(generated) == expected
        # Whatever follows the end of a row is padding.
        assert set(generated[len(expected) :]) <= {adapter.tokenizer.pad_token_id}
        decoded = " ".join(WORD_OF[token] for token in expected if WORD_OF[token] not in SPECIALS)
        assert texts[row] == decoded


@pytest.mark.parametrize("name", ["t5", "llama"])
def test_beam_search_and_sampling_respect_lengths(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4, seed=4, scale=2.0)
    beams = adapter.generate_ids(prompt, INSTRUCTIONS, num_beams=3, max_new_tokens=3)
    assert beams.shape[0] == 3 and beams.shape[1] <= 3
    torch.manual_seed(0)
    sampled = adapter.generate_ids(
        prompt, INSTRUCTIONS, do_sample=True, temperature=1.5, top_p=0.9, max_new_tokens=5, min_new_tokens=3
    )
    assert sampled.shape[0] == 3 and 3 <= sampled.shape[1] <= 5
    assert not (sampled[:, :3] == EOS).any()
    torch.manual_seed(0)
    again = adapter.generate_ids(
        prompt, INSTRUCTIONS, do_sample=True, temperature=1.5, top_p=0.9, max_new_tokens=5, min_new_tokens=3
    )
    assert torch.equal(sampled, again)
    texts = adapter.generate(prompt, INSTRUCTIONS, num_beams=2, max_new_tokens=2)
    assert all(len(text.split()) <= 2 for text in texts)


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_generation_without_cache_is_identical(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4, seed=5, scale=2.0)
    for beams in (1, 3):
        cached = adapter.generate_ids(
            prompt, INSTRUCTIONS, max_new_tokens=6, min_new_tokens=4, num_beams=beams
        )
        uncached = adapter.generate_ids(
            prompt, INSTRUCTIONS, max_new_tokens=6, min_new_tokens=4, num_beams=beams, use_cache=False
        )
        assert torch.equal(cached, uncached), f"{beams} beams"
    # The uncached run re-embeds the prompt at every step: it must still follow the greedy reference.
    uncached = adapter.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=6, min_new_tokens=2, use_cache=False)
    for row, instruction in enumerate(INSTRUCTIONS):
        assert until_eos(uncached[row].tolist()) == reference_greedy(
            adapter, name, prompt[row], instruction, 6, 2
        )


def test_bad_generation_settings(checkpoints):
    adapter = load_tiny(checkpoints["t5"])
    with pytest.raises(LLMInputError, match="min_new_tokens"):
        adapter.generate(soft_prompt(1, 4), ["what"], max_new_tokens=2, min_new_tokens=3)
    with pytest.raises(LLMInputError, match="top_p"):
        adapter.generate(soft_prompt(1, 4), ["what"], do_sample=True, top_p=0.0)


def test_unpadded_generation_draws_no_padding_warning(checkpoints):
    # transformers' generate drops an all-ones attention mask, and GPT-2 then warns when a row starts or
    # ends with the pad id: the soft slots must not hold it (found on `mint ask` with the stand-in LLM).
    adapter = load_tiny(checkpoints["gpt2"])
    adapter.model.config.pad_token_id = adapter.tokenizer.pad_token_id  # declared, as the stand-in's is
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = hf_logging.get_logger("transformers")
    level = logger.level
    hf_logging.warning_once.cache_clear()  # a warning already given once in this process is not repeated
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        texts = adapter.generate(soft_prompt(1, 4, seed=6), ["what"], max_new_tokens=2)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(texts) == 1
    assert not [message for message in messages if "attention_mask" in message]
