"""Gradient checkpointing stores fewer activations and leaves the gradients unchanged."""

from __future__ import annotations

import torch
from bridge_testing import random_inputs, tiny_bridge

from mint.bridge import AttentionMode, BridgeNet


def gradients(
    bridge: BridgeNet, inputs, weights, training: bool = True
) -> tuple[dict[str, torch.Tensor], int]:
    """Parameter gradients of a fixed loss, and how many tensors autograd saved for backward."""
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += 1
        return tensor

    bridge.train(training)
    bridge.zero_grad()
    torch.manual_seed(123)  # the same dropout masks in both runs
    # Tensors saved inside a checkpointed layer go to the checkpoint's own hooks, not to this one.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = bridge(*inputs, mode=AttentionMode.CAUSAL)
    loss = (out.query_output * weights[0]).sum() + (out.text_output * weights[1]).sum()
    loss.backward()
    return {name: p.grad.clone() for name, p in bridge.named_parameters() if p.grad is not None}, saved


def test_checkpointing_gives_the_same_gradients() -> None:
    plain = tiny_bridge(dropout=0.1, attention_dropout=0.1)
    checkpointed = tiny_bridge(dropout=0.1, attention_dropout=0.1, gradient_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    inputs = random_inputs()
    audio = inputs[0].requires_grad_(True)
    generator = torch.Generator().manual_seed(5)
    weights = (torch.randn(2, 4, 32, generator=generator), torch.randn(2, 6, 32, generator=generator))

    expected, plain_saved = gradients(plain, inputs, weights)
    audio_grad = audio.grad.clone()
    audio.grad = None
    got, checkpointed_saved = gradients(checkpointed, inputs, weights)

    assert checkpointed_saved < plain_saved / 4
    assert expected.keys() == got.keys()
    assert "layers.0.cross_attention.attention.key.weight" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(audio.grad, audio_grad, rtol=1e-5, atol=1e-6)


def test_checkpointing_only_while_training() -> None:
    bridge = tiny_bridge(gradient_checkpointing=True)
    plain = tiny_bridge()
    weights = (torch.ones(2, 4, 32), torch.ones(2, 6, 32))
    inputs = random_inputs()
    saved_in_eval = gradients(bridge, inputs, weights, training=False)[1]
    saved_in_training = gradients(bridge, inputs, weights, training=True)[1]
    assert saved_in_training < saved_in_eval
    assert saved_in_eval == gradients(plain, inputs, weights, training=False)[1]
