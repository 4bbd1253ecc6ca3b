"""The loss: recomputed by hand from the logits, and from an unpadded forward of each row on its own;
gradients reach the soft prompt and nothing of the LLM."""

from __future__ import annotations

import pytest
import torch
from llm_testing import load_tiny, reference_logprobs, soft_prompt

INSTRUCTIONS = ["describe the sound", "what is this", "name the source in a few words"]
RESPONSES = ["a dog barks", "rain falls near the car", "cow"]


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_loss_equals_hand_recomputation_from_logits(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4, seed=1)
    out = adapter(prompt, INSTRUCTIONS, RESPONSES)
    # Every position's logits from the bare transformers model on the adapter's batch (the adapter itself
    # projects only the target positions).
    batch = adapter.build_batch(prompt, INSTRUCTIONS, RESPONSES)
    with torch.no_grad():
        if name == "t5":
            logits = adapter.model(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                decoder_input_ids=adapter._decoder_inputs(batch.labels),
            ).logits
            labels = batch.labels
        else:
            logits = adapter.model(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
            ).logits[:, :-1]
            labels = batch.labels[:, 1:]
    logits = logits.double()
    total, count = 0.0, 0
    for row in range(labels.shape[0]):
        for position in range(labels.shape[1]):
            target = int(labels[row, position])
            if target == -100:
                continue
            logits_here = logits[row, position]
            total -= float(logits_here[target] - torch.logsumexp(logits_here, dim=0))
            count += 1
    assert count == sum(len(response.split()) + 1 for response in RESPONSES)
    assert out.loss.dtype == torch.float32
    assert float(out.loss) == pytest.approx(total / count, rel=1e-5)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_batched_loss_equals_unpadded_rows(checkpoints, name, padding_side):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4, seed=2)
    with torch.no_grad():
        batch = adapter.build_batch(prompt, INSTRUCTIONS, RESPONSES, padding_side=padding_side)
        predicted = adapter._predict(batch)
        per_token = [
            reference_logprobs(adapter, name, prompt[row], INSTRUCTIONS[row], RESPONSES[row])
            for row in range(3)
        ]
    expected = -torch.cat(per_token).mean()
    # Every row on its own, with no padding: same loss whichever side the batch was padded on.
    targets = predicted.targets[predicted.targets != -100]
    picked = torch.log_softmax(predicted.logits.double(), -1).gather(-1, targets.unsqueeze(-1))
    got = -picked.mean()
    assert float(got) == pytest.approx(float(expected), abs=1e-5)
    if padding_side == "right":
        with torch.no_grad():
            assert float(adapter(prompt, INSTRUCTIONS, RESPONSES).loss) == pytest.approx(
                float(expected), abs=1e-5
            )


@pytest.mark.parametrize("name", ["t5", "llama"])
def test_gradient_reaches_soft_prompt_only(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, 4).requires_grad_(True)
    adapter(prompt, INSTRUCTIONS, RESPONSES).loss.backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in adapter.parameters())


def test_bfloat16_llm_with_float32_soft_prompt(checkpoints):
    adapter = load_tiny(checkpoints["t5"], dtype="bfloat16")
    assert adapter.model.get_input_embeddings().weight.dtype == torch.bfloat16
    prompt = soft_prompt(3, 4).requires_grad_(True)
    out = adapter(prompt, INSTRUCTIONS, RESPONSES)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert prompt.grad.dtype == torch.float32 and prompt.grad.abs().sum() > 0
    reference = load_tiny(checkpoints["t5"])(soft_prompt(3, 4), INSTRUCTIONS, RESPONSES).loss
    assert float(out.loss.detach()) == pytest.approx(float(reference), rel=0.05)
