"""BridgeConfig rejects out-of-range values, naming the field."""

from __future__ import annotations

import pytest

from mint.bridge import BridgeConfig
from mint.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": -1}, "num_layers"),
        ({"num_queries": 0}, "num_queries"),
        ({"cross_attention_freq": 0}, "cross_attention_freq"),
        ({"hidden_size": 100, "num_heads": 12}, "num_heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": -0.1}, "attention_dropout"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"attn_implementation": "flash"}, "attn_implementation"),
        ({"init": "roberta"}, "init"),
        ({"pad_token_id": 30522}, "pad_token_id"),
        ({"vocab_size": True}, "vocab_size"),
    ],
)
def test_bad_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"model\.bridge\.{field}:"):
        BridgeConfig(**overrides)


def test_defaults_are_the_paper_scale() -> None:
    config = BridgeConfig()
    paper_scale = (768, 12, 32, 2)
    assert (
        config.hidden_size,
        config.num_layers,
        config.num_queries,
        config.cross_attention_freq,
    ) == paper_scale
