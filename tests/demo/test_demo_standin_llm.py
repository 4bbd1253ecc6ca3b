from __future__ import annotations

import torch

from mint.demo.standin_llm import StandinLLMConfig, build_word_tokenizer, train_standin_llm
from mint.llm import LLMConfig, load_llm

TEXTS = [
    "a loud siren followed by a soft bird chirp",
    "first a knock, then a bell rings",
    "how many sounds are there? two",
    "what comes first? siren",
] * 4


def test_word_tokenizer_round_trips_every_corpus_word():
    tokenizer = build_word_tokenizer(TEXTS)
    for text in TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids).replace(" ,", ",").replace(" ?", "?") == text
    assert tokenizer.encode("zebra", add_special_tokens=False) == [tokenizer.unk_token_id]


def test_standin_llm_learns_the_text_and_loads_as_a_frozen_llm(tmp_path):
    config = StandinLLMConfig(hidden_size=32, num_layers=1, num_heads=2, steps=60, batch_size=8, lr=1e-2)
    path = train_standin_llm(TEXTS, tmp_path / "llm", config, progress=False)
    adapter = load_llm(LLMConfig(name_or_path=str(path)))
    assert not adapter.is_encoder_decoder
    assert all(not p.requires_grad for p in adapter.parameters())
    tokenizer = adapter.tokenizer
    model = adapter.model
    ids = torch.tensor(
        [[tokenizer.bos_token_id, *tokenizer.encode("how many sounds are there?", add_special_tokens=False)]]
    )
    with torch.no_grad():
        next_token = model(input_ids=ids).logits[0, -1].argmax().item()
    # The corpus always answers this question with "two": the trained LM must have learnt it.
    assert tokenizer.decode([next_token]) == "two"
