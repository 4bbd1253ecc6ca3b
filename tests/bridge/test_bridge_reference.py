"""The Bridge-Net against independent implementations in `transformers`.

* Text only: exactly BERT (`BertModel`), and its LM head exactly `BertForMaskedLM`'s.
* Queries and text, bidirectional: exactly InstructBLIP's Q-Former, which has the same layout
  (queries before text, cross-attention on query positions, separate query feed-forward) but no
  token-type embedding, so ours is set to zero for that comparison.
"""

from __future__ import annotations

import re

import pytest
import torch
from bridge_testing import (
    AUDIO_DIM,
    HEADS,
    HIDDEN,
    INTERMEDIATE,
    MAX_POSITIONS,
    VOCAB,
    random_inputs,
    save_bert,
    tiny_bridge,
    tiny_config,
)
from transformers import BertForMaskedLM, BertModel, InstructBlipQFormerConfig, InstructBlipQFormerModel

from mint.bridge import AttentionMode, BridgeConfig, build_bridge

ATOL = 1e-5


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_text_only_forward_equals_bert(tmp_path, implementation: str) -> None:
    bert, path = save_bert(BertModel, tmp_path / "bert")
    config = BridgeConfig(init="bert", init_path=str(path), attn_implementation=implementation, dropout=0.0)
    bridge, _ = build_bridge(config, tokenizer_vocab_size=VOCAB)
    bridge.eval()

    _, _, ids, text_mask = random_inputs(length=9)
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=text_mask).last_hidden_state
        ours = bridge(input_ids=ids, attention_mask=text_mask, use_queries=False).text_output
    torch.testing.assert_close(ours, expected, rtol=0, atol=ATOL)


def test_lm_logits_equal_bert_masked_lm(tmp_path) -> None:
    bert, path = save_bert(BertForMaskedLM, tmp_path / "mlm")
    bridge, _ = build_bridge(BridgeConfig(init="bert", init_path=str(path), dropout=0.0), VOCAB)
    bridge.eval()

    _, _, ids, text_mask = random_inputs()
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=text_mask).logits
        text = bridge(input_ids=ids, attention_mask=text_mask, use_queries=False).text_output
        ours = bridge.lm_logits(text)
    assert ours.shape == (*ids.shape, VOCAB)
    torch.testing.assert_close(ours, expected, rtol=0, atol=ATOL)


def test_sdpa_and_eager_give_the_same_outputs() -> None:
    sdpa = tiny_bridge(attn_implementation="sdpa")
    eager = tiny_bridge(attn_implementation="eager")
    eager.load_state_dict(sdpa.state_dict())
    inputs = random_inputs()
    for mode in AttentionMode:
        with torch.no_grad():
            a = sdpa(*inputs, mode=mode)
            b = eager(*inputs, mode=mode)
        torch.testing.assert_close(a.query_output, b.query_output, rtol=0, atol=ATOL)
        torch.testing.assert_close(a.text_output, b.text_output, rtol=0, atol=ATOL)


_TO_QFORMER = [
    (r"^embeddings\.layer_norm\.", "embeddings.layernorm."),
    (r"^layers\.(\d+)\.self_attention\.attention\.", r"encoder.layer.\1.attention.attention."),
    (r"^layers\.(\d+)\.self_attention\.output\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.self_attention\.layer_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.cross_attention\.attention\.", r"encoder.layer.\1.crossattention.attention."),
    (r"^layers\.(\d+)\.cross_attention\.output\.", r"encoder.layer.\1.crossattention.output.dense."),
    (r"^layers\.(\d+)\.cross_attention\.layer_norm\.", r"encoder.layer.\1.crossattention.output.LayerNorm."),
    (r"^layers\.(\d+)\.text_ffn\.dense_in\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.text_ffn\.dense_out\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.text_ffn\.layer_norm\.", r"encoder.layer.\1.output.LayerNorm."),
    (r"^layers\.(\d+)\.query_ffn\.dense_in\.", r"encoder.layer.\1.intermediate_query.dense."),
    (r"^layers\.(\d+)\.query_ffn\.dense_out\.", r"encoder.layer.\1.output_query.dense."),
    (r"^layers\.(\d+)\.query_ffn\.layer_norm\.", r"encoder.layer.\1.output_query.LayerNorm."),
]


def _qformer_name(name: str) -> str:
    for pattern, replacement in _TO_QFORMER:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_bidirectional_forward_equals_instructblip_qformer(implementation: str) -> None:
    bridge = tiny_bridge(num_layers=3, attn_implementation=implementation)
    with torch.no_grad():
        bridge.embeddings.token_type_embedding.zero_()
    reference_config = InstructBlipQFormerConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=MAX_POSITIONS,
        layer_norm_eps=tiny_config().layer_norm_eps,
        cross_attention_frequency=2,
        encoder_hidden_size=AUDIO_DIM,
    )
    reference_config._attn_implementation = "eager"
    reference = InstructBlipQFormerModel(reference_config).eval()

    ours = {
        _qformer_name(name): value
        for name, value in bridge.state_dict().items()
        if not name.startswith(("queries", "embeddings.token_type", "lm_head"))
    }
    theirs = reference.state_dict()
    assert set(ours) == set(theirs)
    reference.load_state_dict(ours)

    audio, audio_mask, ids, text_mask = random_inputs()
    queries = bridge.queries.expand(ids.shape[0], -1, -1)
    joint_mask = torch.cat([torch.ones(queries.shape[:2], dtype=torch.long), text_mask], dim=1)
    with torch.no_grad():
        expected = reference(
            input_ids=ids,
            attention_mask=joint_mask,
            query_embeds=queries,
            encoder_hidden_states=audio,
            encoder_attention_mask=audio_mask.long(),
        ).last_hidden_state
        out = bridge(audio, audio_mask, ids, text_mask, mode=AttentionMode.BIDIRECTIONAL)
    got = torch.cat([out.query_output, out.text_output], dim=1)
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
