"""The Bridge-Net tokenizer gets `[DEC]`, and the Bridge-Net resizes to it."""

from __future__ import annotations

import pytest
import torch
from bridge_testing import HIDDEN, VOCAB, tiny_bridge
from transformers import BertTokenizer

from mint.bridge import DECODER_START_TOKEN, decoder_start_token_id, load_bridge_tokenizer
from mint.errors import CheckpointError, ConfigError

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "barks", "rain", "falls"]


def save_tokenizer(tmp_path, **kwargs):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    directory = tmp_path / "tokenizer"
    BertTokenizer(str(vocab), **kwargs).save_pretrained(directory)
    return directory


def test_dec_is_added_once_as_a_single_special_token(tmp_path) -> None:
    tokenizer = load_bridge_tokenizer(save_tokenizer(tmp_path))
    assert len(tokenizer) == len(WORDS) + 1
    dec = decoder_start_token_id(tokenizer)
    assert dec == len(WORDS)
    assert tokenizer.bos_token == DECODER_START_TOKEN
    ids = tokenizer(f"{DECODER_START_TOKEN} a dog barks", add_special_tokens=False)["input_ids"]
    assert ids == [dec, 5, 6, 7]
    assert DECODER_START_TOKEN not in tokenizer.decode(ids, skip_special_tokens=True)

    saved = tmp_path / "with-dec"
    tokenizer.save_pretrained(saved)
    reloaded = load_bridge_tokenizer(saved)
    assert len(reloaded) == len(tokenizer)
    assert decoder_start_token_id(reloaded) == dec


def test_existing_bos_token_is_kept(tmp_path) -> None:
    tokenizer = load_bridge_tokenizer(save_tokenizer(tmp_path, bos_token="[CLS]"))
    assert tokenizer.bos_token == "[CLS]"
    assert decoder_start_token_id(tokenizer) == len(WORDS)
    assert tokenizer.tokenize(f"a {DECODER_START_TOKEN} dog") == ["a", DECODER_START_TOKEN, "dog"]


def test_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="cannot load a tokenizer"):
        load_bridge_tokenizer(tmp_path / "nowhere")
    save_tokenizer(tmp_path)
    plain = BertTokenizer(str(tmp_path / "vocab.txt"))
    with pytest.raises(CheckpointError, match=r"\[DEC\]"):
        decoder_start_token_id(plain)


def test_resize_token_embeddings_keeps_old_rows_and_the_tie() -> None:
    bridge = tiny_bridge()
    old_embeddings = bridge.embeddings.word_embeddings.weight.detach().clone()
    old_bias = bridge.lm_head.bias.detach().clone()
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        before = bridge(input_ids=ids, use_queries=False).text_output

    bridge.resize_token_embeddings(VOCAB + 2)
    assert bridge.config.vocab_size == VOCAB + 2
    weight = bridge.embeddings.word_embeddings.weight
    assert weight.shape == (VOCAB + 2, HIDDEN) and weight.requires_grad
    assert torch.equal(weight[:VOCAB], old_embeddings)
    assert torch.equal(bridge.lm_head.bias[:VOCAB], old_bias)
    assert torch.equal(bridge.lm_head.bias[VOCAB:], torch.zeros(2))
    with torch.no_grad():
        after = bridge(input_ids=ids, use_queries=False).text_output
        new_token = bridge(input_ids=torch.tensor([[2, VOCAB + 1, 3]]), use_queries=False).text_output
        logits = bridge.lm_logits(after)
    torch.testing.assert_close(after, before)
    assert torch.isfinite(new_token).all()
    torch.testing.assert_close(logits, bridge.lm_head(after, weight))
    assert logits.shape == (1, 4, VOCAB + 2)

    bridge.resize_token_embeddings(VOCAB - 10)
    assert bridge.embeddings.word_embeddings.num_embeddings == VOCAB - 10
    assert torch.equal(bridge.embeddings.word_embeddings.weight, old_embeddings[: VOCAB - 10])
    with pytest.raises(ConfigError, match="vocab_size"):
        bridge.resize_token_embeddings(0)


def test_lm_logits_follow_the_word_embeddings() -> None:
    bridge = tiny_bridge()
    text = torch.randn(1, 3, HIDDEN)
    with torch.no_grad():
        before = bridge.lm_logits(text)
        bridge.embeddings.word_embeddings.weight[7].mul_(2.0)
        after = bridge.lm_logits(text)
    assert not torch.allclose(before[..., 7], after[..., 7])
    torch.testing.assert_close(before[..., :7], after[..., :7])
