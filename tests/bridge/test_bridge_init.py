"""Initialisation from BERT checkpoints, compared tensor by tensor with the HF model that wrote them."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from bridge_testing import HIDDEN, VOCAB, save_bert, tiny_config
from safetensors.torch import load_file, save_file
from transformers import BertForMaskedLM, BertLMHeadModel, BertModel

from mint.bridge import BridgeConfig, BridgeNet, build_bridge, initialise_from_bert
from mint.errors import CheckpointError, ConfigError


def expected_pairs(bridge: BridgeNet, bert: BertModel) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, Bridge-Net tensor, HF tensor) for everything that must come from the checkpoint."""
    pairs = [
        ("word", bridge.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight),
        (
            "position",
            bridge.embeddings.position_embeddings.weight,
            bert.embeddings.position_embeddings.weight,
        ),
        ("type0", bridge.embeddings.token_type_embedding, bert.embeddings.token_type_embeddings.weight[0]),
        ("emb-ln", bridge.embeddings.layer_norm.weight, bert.embeddings.LayerNorm.weight),
        ("emb-ln-b", bridge.embeddings.layer_norm.bias, bert.embeddings.LayerNorm.bias),
    ]
    for i, theirs in enumerate(bert.encoder.layer):
        ours = bridge.layers[i]
        attention = theirs.attention
        for proj in ("query", "key", "value"):
            for kind in ("weight", "bias"):
                pairs.append(
                    (
                        f"{i}.{proj}.{kind}",
                        getattr(getattr(ours.self_attention.attention, proj), kind),
                        getattr(getattr(attention.self, proj), kind),
                    )
                )
        for kind in ("weight", "bias"):
            pairs += [
                (
                    f"{i}.attn-out.{kind}",
                    getattr(ours.self_attention.output, kind),
                    getattr(attention.output.dense, kind),
                ),
                (
                    f"{i}.attn-ln.{kind}",
                    getattr(ours.self_attention.layer_norm, kind),
                    getattr(attention.output.LayerNorm, kind),
                ),
            ]
            for ffn in (ours.text_ffn, ours.query_ffn):
                pairs += [
                    (
                        f"{i}.ffn-in.{kind}",
                        getattr(ffn.dense_in, kind),
                        getattr(theirs.intermediate.dense, kind),
                    ),
                    (f"{i}.ffn-out.{kind}", getattr(ffn.dense_out, kind), getattr(theirs.output.dense, kind)),
                    (
                        f"{i}.ffn-ln.{kind}",
                        getattr(ffn.layer_norm, kind),
                        getattr(theirs.output.LayerNorm, kind),
                    ),
                ]
    return pairs


def assert_loaded_from(bridge: BridgeNet, bert: BertModel) -> None:
    for name, ours, theirs in expected_pairs(bridge, bert):
        assert torch.equal(ours, theirs), name


@pytest.mark.parametrize("model_class", [BertModel, BertForMaskedLM, BertLMHeadModel])
def test_loads_every_matching_tensor(tmp_path, model_class) -> None:
    extra = {"is_decoder": True} if model_class is BertLMHeadModel else {}
    hf, path = save_bert(model_class, tmp_path / "ckpt", **extra)
    bert = hf if model_class is BertModel else hf.bert
    bridge = BridgeNet(tiny_config(num_layers=2))
    report = initialise_from_bert(bridge, path)

    assert_loaded_from(bridge, bert)
    # The query feed-forward is a copy, not the same tensor: it can train apart from the text one.
    layer = bridge.layers[0]
    assert layer.query_ffn.dense_in.weight.data_ptr() != layer.text_ffn.dense_in.weight.data_ptr()

    names = [name for name, _ in bridge.named_parameters()]
    assert set(report.loaded) | set(report.newly_initialised) == set(names)
    assert not set(report.loaded) & set(report.newly_initialised)
    assert "queries" in report.newly_initialised
    cross = [name for name in names if ".cross_attention." in name]
    assert cross and set(cross) <= set(report.newly_initialised)
    prefix = "" if model_class is BertModel else "bert."
    assert (
        report.loaded["layers.1.query_ffn.dense_out.weight"] == f"{prefix}encoder.layer.1.output.dense.weight"
    )

    if model_class is BertModel:
        assert "no counterpart" in report.skipped["pooler.dense.weight"]
        assert {"lm_head.dense.weight", "lm_head.bias"} <= set(report.newly_initialised)
    else:
        head = hf.cls.predictions
        assert torch.equal(bridge.lm_head.dense.weight, head.transform.dense.weight)
        assert torch.equal(bridge.lm_head.dense.bias, head.transform.dense.bias)
        assert torch.equal(bridge.lm_head.layer_norm.weight, head.transform.LayerNorm.weight)
        assert torch.equal(bridge.lm_head.layer_norm.bias, head.transform.LayerNorm.bias)
        assert torch.equal(bridge.lm_head.bias, head.bias)
        assert not any(name.startswith("lm_head") for name in report.newly_initialised)


def test_shape_mismatch_and_extra_layers_are_skipped_with_reasons(tmp_path) -> None:
    hf, path = save_bert(BertModel, tmp_path / "ckpt", num_hidden_layers=3)
    bridge = BridgeNet(tiny_config(num_layers=2, intermediate_size=48))
    report = initialise_from_bert(bridge, path)

    assert "shape [64, 32]" in report.skipped["encoder.layer.0.intermediate.dense.weight"]
    assert "layers.0.text_ffn.dense_in.weight" in report.newly_initialised
    assert "layers.0.query_ffn.dense_in.weight" in report.newly_initialised
    assert "beyond the Bridge-Net's 2 layers" in report.skipped["encoder.layer.2.attention.self.query.weight"]
    assert torch.equal(
        bridge.layers[1].self_attention.attention.key.weight, hf.encoder.layer[1].attention.self.key.weight
    )
    assert torch.equal(
        bridge.layers[0].text_ffn.layer_norm.weight, hf.encoder.layer[0].output.LayerNorm.weight
    )


def test_tf_era_gamma_beta_names_and_sharded_files_load(tmp_path) -> None:
    hf, path = save_bert(BertForMaskedLM, tmp_path / "ckpt")
    tensors = load_file(path / "model.safetensors")
    renamed = {
        name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
        for name, value in tensors.items()
    }
    first = {name: value for name, value in renamed.items() if "encoder" in name}
    second = {name: value for name, value in renamed.items() if "encoder" not in name}
    save_file(first, path / "part-1.safetensors")
    save_file(second, path / "part-2.safetensors")
    weight_map = {name: "part-1.safetensors" for name in first} | {
        name: "part-2.safetensors" for name in second
    }
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (path / "model.safetensors").unlink()

    bridge = BridgeNet(tiny_config(num_layers=2))
    report = initialise_from_bert(bridge, path)
    assert_loaded_from(bridge, hf.bert)
    assert report.loaded["embeddings.layer_norm.weight"] == "bert.embeddings.LayerNorm.gamma"


def test_build_bridge_takes_sizes_from_the_checkpoint_and_grows_the_vocabulary(tmp_path, caplog) -> None:
    hf, path = save_bert(BertModel, tmp_path / "ckpt")
    config = BridgeConfig(init="bert", init_path=str(path), num_queries=3, encoder_hidden_size=20)
    with caplog.at_level(logging.INFO, logger="mint.bridge.init"):
        bridge, report = build_bridge(config, tokenizer_vocab_size=VOCAB + 1)

    assert bridge.config.hidden_size == HIDDEN and bridge.config.num_layers == 2
    assert bridge.config.intermediate_size == 64 and bridge.config.max_position_embeddings == 24
    assert bridge.config.num_queries == 3 and bridge.config.encoder_hidden_size == 20
    assert report.overridden["hidden_size"] == (768, HIDDEN)
    assert report.overridden["num_layers"] == (12, 2)
    assert report.overridden["num_heads"] == (12, 4)
    assert "layer_norm_eps" not in report.overridden
    assert bridge.config.vocab_size == VOCAB + 1
    assert bridge.embeddings.word_embeddings.weight.shape == (VOCAB + 1, HIDDEN)
    assert bridge.lm_head.bias.shape == (VOCAB + 1,)
    assert torch.equal(bridge.embeddings.word_embeddings.weight[:VOCAB], hf.embeddings.word_embeddings.weight)
    assert any("grown from 60 to" in note for note in report.notes)
    assert "hidden_size = 32 from the checkpoint" in caplog.text
    assert "cross_attention" in caplog.text


def test_build_bridge_from_scratch_sizes_the_vocabulary_for_the_tokenizer() -> None:
    bridge, report = build_bridge(tiny_config(), tokenizer_vocab_size=VOCAB + 5)
    assert bridge.config.vocab_size == VOCAB + 5
    assert not report.loaded
    assert set(report.newly_initialised) == {name for name, _ in bridge.named_parameters()}
    torch.testing.assert_close(bridge.queries.std().item(), 0.02, atol=0.01, rtol=0)


def test_checkpoint_errors_name_the_file(tmp_path) -> None:
    bridge = BridgeNet(tiny_config(num_layers=2))
    with pytest.raises(CheckpointError, match="expected a BERT checkpoint directory"):
        initialise_from_bert(bridge, tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        initialise_from_bert(bridge, tmp_path)

    _, path = save_bert(BertModel, tmp_path / "ckpt")
    raw = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**raw, "hidden_act": "relu"}))
    with pytest.raises(CheckpointError, match=r"config\.json: hidden_act 'relu'"):
        build_bridge(BridgeConfig(init="bert", init_path=str(path)), VOCAB)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        build_bridge(BridgeConfig(init="bert", init_path=str(path)), VOCAB)


def test_bert_init_requires_a_path() -> None:
    with pytest.raises(ConfigError, match=r"model\.bridge\.init_path"):
        BridgeConfig(init="bert")
