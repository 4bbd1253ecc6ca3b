"""What the attention modes let through, shown by changing one input and watching the outputs."""

from __future__ import annotations

import pytest
import torch
from bridge_testing import AUDIO_DIM, NUM_QUERIES, VOCAB, random_inputs, tiny_bridge

from mint.bridge import AttentionMode, BridgeInputError, BridgeNet, BridgeOutput


def same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def differs(a: torch.Tensor, b: torch.Tensor) -> None:
    assert (a - b).abs().max() > 1e-3


def run(bridge: BridgeNet, audio, audio_mask, ids, text_mask, mode: AttentionMode) -> BridgeOutput:
    with torch.no_grad():
        return bridge(audio, audio_mask, ids, text_mask, mode=mode)


def other_text(ids: torch.Tensor, position: int | slice) -> torch.Tensor:
    changed = ids.clone()
    changed[:, position] = (changed[:, position] + 7) % VOCAB
    return changed


def test_unimodal_keeps_queries_and_text_apart() -> None:
    bridge = tiny_bridge()
    audio, audio_mask, ids, text_mask = random_inputs()
    base = run(bridge, audio, audio_mask, ids, text_mask, AttentionMode.UNIMODAL)

    new_text = run(bridge, audio, audio_mask, other_text(ids, slice(1, 4)), text_mask, AttentionMode.UNIMODAL)
    same(new_text.query_output, base.query_output)
    differs(new_text.text_output, base.text_output)

    new_audio = run(bridge, audio + 1.0, audio_mask, ids, text_mask, AttentionMode.UNIMODAL)
    same(new_audio.text_output, base.text_output)
    differs(new_audio.query_output, base.query_output)


def test_unimodal_text_equals_text_only_and_queries_equal_audio_only() -> None:
    bridge = tiny_bridge()
    audio, audio_mask, ids, text_mask = random_inputs()
    joint = run(bridge, audio, audio_mask, ids, text_mask, AttentionMode.UNIMODAL)
    with torch.no_grad():
        text_only = bridge(input_ids=ids, attention_mask=text_mask, use_queries=False)
        audio_only = bridge(audio, audio_mask)
    assert text_only.query_output is None and audio_only.text_output is None
    torch.testing.assert_close(joint.text_output, text_only.text_output)
    torch.testing.assert_close(joint.query_output, audio_only.query_output)


def test_causal_text_sees_only_the_past_and_queries_never_see_text() -> None:
    bridge = tiny_bridge()
    audio, audio_mask, ids, text_mask = random_inputs()
    text_mask = torch.ones_like(text_mask)
    base = run(bridge, audio, audio_mask, ids, text_mask, AttentionMode.CAUSAL)

    later = run(bridge, audio, audio_mask, other_text(ids, 3), text_mask, AttentionMode.CAUSAL)
    same(later.query_output, base.query_output)
    same(later.text_output[:, :3], base.text_output[:, :3])
    differs(later.text_output[:, 3], base.text_output[:, 3])

    earlier = run(bridge, audio, audio_mask, other_text(ids, 0), text_mask, AttentionMode.CAUSAL)
    for position in range(ids.shape[1]):
        differs(earlier.text_output[:, position], base.text_output[:, position])

    new_audio = run(bridge, audio + 1.0, audio_mask, ids, text_mask, AttentionMode.CAUSAL)
    differs(new_audio.text_output, base.text_output)


def test_causal_queries_equal_unimodal_queries() -> None:
    bridge = tiny_bridge()
    inputs = random_inputs()
    causal = run(bridge, *inputs, AttentionMode.CAUSAL)
    unimodal = run(bridge, *inputs, AttentionMode.UNIMODAL)
    torch.testing.assert_close(causal.query_output, unimodal.query_output)


def test_bidirectional_flows_both_ways() -> None:
    bridge = tiny_bridge()
    audio, audio_mask, ids, text_mask = random_inputs()
    base = run(bridge, audio, audio_mask, ids, text_mask, AttentionMode.BIDIRECTIONAL)

    new_text = run(bridge, audio, audio_mask, other_text(ids, 2), text_mask, AttentionMode.BIDIRECTIONAL)
    differs(new_text.query_output, base.query_output)
    differs(new_text.text_output[:, 0], base.text_output[:, 0])

    new_audio = run(bridge, audio + 1.0, audio_mask, ids, text_mask, AttentionMode.BIDIRECTIONAL)
    differs(new_audio.text_output, base.text_output)


@pytest.mark.parametrize("mode", list(AttentionMode))
def test_padded_audio_frames_and_padded_tokens_are_ignored(mode: AttentionMode) -> None:
    bridge = tiny_bridge()
    audio, audio_mask, ids, text_mask = random_inputs()
    base = run(bridge, audio, audio_mask, ids, text_mask, mode)

    noisy_audio = torch.where(audio_mask[..., None], audio, torch.randn_like(audio) * 5)
    assert not torch.equal(noisy_audio, audio)
    changed = run(bridge, noisy_audio, audio_mask, ids, text_mask, mode)
    same(changed.query_output, base.query_output)
    same(changed.text_output, base.text_output)

    real = text_mask.bool()
    noisy_ids = torch.where(real, ids, (ids + 11) % VOCAB)
    changed = run(bridge, audio, audio_mask, noisy_ids, text_mask, mode)
    same(changed.query_output, base.query_output)
    same(changed.text_output[real], base.text_output[real])


def test_all_frames_real_equals_no_audio_mask() -> None:
    bridge = tiny_bridge()
    audio, _, ids, text_mask = random_inputs()
    with_mask = run(
        bridge, audio, torch.ones(audio.shape[:2], dtype=torch.bool), ids, text_mask, "bidirectional"
    )
    without = run(bridge, audio, None, ids, text_mask, "bidirectional")
    same(with_mask.query_output, without.query_output)


@pytest.mark.parametrize(
    ("num_layers", "freq", "expected"), [(4, 2, [0, 2]), (4, 3, [0, 3]), (3, 1, [0, 1, 2])]
)
def test_cross_attention_only_at_configured_layers(num_layers: int, freq: int, expected: list[int]) -> None:
    bridge = tiny_bridge(num_layers=num_layers, cross_attention_freq=freq)
    present = [i for i, layer in enumerate(bridge.layers) if layer.cross_attention is not None]
    assert present == expected
    for i in expected:
        assert bridge.layers[i].cross_attention.attention.key.in_features == AUDIO_DIM

    calls: list[tuple[int, int]] = []
    for i in expected:
        bridge.layers[i].cross_attention.register_forward_hook(
            lambda module, args, output, i=i: calls.append((i, args[0].shape[1]))
        )
    run(bridge, *random_inputs(), AttentionMode.BIDIRECTIONAL)
    # Each cross-attention runs once, on the query positions only.
    assert calls == [(i, NUM_QUERIES) for i in expected]


def test_query_positions_use_their_own_feed_forward() -> None:
    inputs = random_inputs()
    bridge = tiny_bridge()
    base = run(bridge, *inputs, AttentionMode.UNIMODAL)

    with torch.no_grad():
        bridge.layers[1].query_ffn.dense_out.weight.mul_(3.0)
    changed = run(bridge, *inputs, AttentionMode.UNIMODAL)
    differs(changed.query_output, base.query_output)
    same(changed.text_output, base.text_output)

    bridge = tiny_bridge()
    with torch.no_grad():
        bridge.layers[1].text_ffn.dense_out.weight.mul_(3.0)
    changed = run(bridge, *inputs, AttentionMode.UNIMODAL)
    same(changed.query_output, base.query_output)
    differs(changed.text_output, base.text_output)


def test_shared_feed_forward_when_not_separate() -> None:
    inputs = random_inputs()
    bridge = tiny_bridge(separate_query_ffn=False)
    assert all(layer.query_ffn is None for layer in bridge.layers)
    base = run(bridge, *inputs, AttentionMode.UNIMODAL)
    with torch.no_grad():
        bridge.layers[1].text_ffn.dense_out.weight.mul_(3.0)
    differs(run(bridge, *inputs, AttentionMode.UNIMODAL).query_output, base.query_output)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_ids": torch.ones(2, 3, dtype=torch.long)}, "audio_features: required"),
        ({"audio_features": torch.zeros(2, 5, AUDIO_DIM), "use_queries": False}, "only through the queries"),
        ({"use_queries": False}, "input_ids: required"),
        ({"audio_features": torch.zeros(2, 5, AUDIO_DIM + 1)}, r"\[B, T, 16\]"),
        ({"audio_features": torch.zeros(2, 5, AUDIO_DIM), "audio_mask": torch.ones(2, 4)}, "audio_mask"),
        (
            {"audio_features": torch.zeros(2, 5, AUDIO_DIM), "input_ids": torch.ones(3, 4, dtype=torch.long)},
            "batch sizes differ",
        ),
        ({"input_ids": torch.ones(1, 30, dtype=torch.long), "use_queries": False}, "max_position_embeddings"),
        ({"input_ids": torch.full((1, 3), VOCAB), "use_queries": False}, "token ids"),
        (
            {
                "input_ids": torch.ones(1, 3, dtype=torch.long),
                "attention_mask": torch.ones(1, 4),
                "use_queries": False,
            },
            "attention_mask",
        ),
        ({"input_ids": torch.ones(1, 3, dtype=torch.long), "use_queries": False, "mode": "both"}, "mode"),
    ],
)
def test_bad_inputs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(BridgeInputError, match=message):
        tiny_bridge()(**kwargs)
