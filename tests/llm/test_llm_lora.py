"""Optional LoRA adapters: only they train, their dropout follows train(), and they save and load alone."""

from __future__ import annotations

import pytest
import torch
from llm_testing import load_tiny, soft_prompt
from safetensors.torch import load_file

from mint.errors import CheckpointError
from mint.llm import LLMInputError

INSTRUCTIONS = ["describe the sound", "what is this sound"]
RESPONSES = ["a dog barks", "rain falls"]
# peft's default targets: the attention query and value projections of each architecture.
DEFAULT_TARGETS = {"t5": (".q.", ".v."), "llama": ("q_proj", "v_proj"), "gpt2": ("c_attn",)}


def randomise_lora(adapter, seed: int = 0) -> None:
    """LoRA starts as the identity (B = 0); give every LoRA tensor random values so it changes outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in adapter.trainable_state().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_only_lora_weights_train(checkpoints, name):
    adapter = load_tiny(checkpoints[name], lora=True, lora_rank=4)
    trainable = adapter.trainable_state()
    assert trainable and all(".lora_A." in key or ".lora_B." in key for key in trainable)
    for target in DEFAULT_TARGETS[name]:
        assert any(target in key for key in trainable)
    assert set(trainable) == {key for key, p in adapter.named_parameters() if p.requires_grad}
    assert set(trainable) <= set(adapter.state_dict())

    prompt = soft_prompt(2, 3).requires_grad_(True)
    adapter(prompt, INSTRUCTIONS, RESPONSES).loss.backward()
    assert prompt.grad.abs().sum() > 0
    parameters = dict(adapter.named_parameters())
    for key, parameter in parameters.items():
        assert (parameter.grad is not None) == (key in trainable)
    # LoRA B starts at zero, so A gets no gradient yet, but B does.
    assert any(parameters[key].grad.abs().sum() > 0 for key in trainable if ".lora_B." in key)
    assert load_tiny(checkpoints[name]).trainable_state() == {}


def test_configured_target_modules(checkpoints):
    adapter = load_tiny(checkpoints["llama"], lora=True, lora_target_modules=["k_proj", "o_proj"])
    keys = adapter.trainable_state()
    assert any("k_proj" in key for key in keys) and any("o_proj" in key for key in keys)
    assert not any("q_proj" in key or "v_proj" in key for key in keys)


def test_lora_dropout_follows_train_mode_and_base_stays_eval(checkpoints):
    adapter = load_tiny(checkpoints["llama"], lora=True, lora_dropout=0.5)
    randomise_lora(adapter)
    parent = torch.nn.ModuleDict({"llm": adapter})
    parent.train()
    dropouts = [m for key, m in adapter.named_modules() if key.endswith("lora_dropout.default")]
    assert dropouts and all(module.training for module in dropouts)
    others = [m for key, m in adapter.named_modules() if "lora_dropout" not in key]
    assert not any(module.training for module in others)
    prompt = soft_prompt(2, 3)
    with torch.no_grad():
        first = adapter(prompt, INSTRUCTIONS, RESPONSES).loss
        second = adapter(prompt, INSTRUCTIONS, RESPONSES).loss
        assert not torch.equal(first, second)
        parent.eval()
        assert not any(module.training for module in adapter.modules())
        assert torch.equal(
            adapter(prompt, INSTRUCTIONS, RESPONSES).loss, adapter(prompt, INSTRUCTIONS, RESPONSES).loss
        )


@pytest.mark.parametrize("name", ["t5", "llama"])
def test_adapter_saves_alone_and_loads_into_fresh_model(checkpoints, tmp_path, name):
    prompt = soft_prompt(2, 3, scale=2.0)
    base_ids = load_tiny(checkpoints[name]).generate_ids(
        prompt, INSTRUCTIONS, max_new_tokens=5, min_new_tokens=5
    )
    adapter = load_tiny(checkpoints[name], lora=True)
    randomise_lora(adapter)
    tuned_ids = adapter.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=5, min_new_tokens=5)
    assert not torch.equal(tuned_ids, base_ids)

    adapter.save_adapter(str(tmp_path / "adapter"))
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved)
    assert len(saved) == len(adapter.trainable_state())
    assert not (tmp_path / "adapter" / "model.safetensors").exists()

    fresh = load_tiny(checkpoints[name], lora=True)
    assert torch.equal(fresh.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=5, min_new_tokens=5), base_ids)
    fresh.load_adapter(str(tmp_path / "adapter"))
    for key, tensor in adapter.trainable_state().items():
        assert torch.equal(fresh.trainable_state()[key], tensor)
    assert torch.equal(
        fresh.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=5, min_new_tokens=5), tuned_ids
    )
    assert fresh.generate(prompt, INSTRUCTIONS, num_beams=2) == adapter.generate(
        prompt, INSTRUCTIONS, num_beams=2
    )


def test_trainable_state_round_trip(checkpoints):
    adapter = load_tiny(checkpoints["llama"], lora=True)
    randomise_lora(adapter, seed=3)
    state = {key: tensor.clone() for key, tensor in adapter.trainable_state().items()}
    fresh = load_tiny(checkpoints["llama"], lora=True)
    fresh.load_trainable_state(state)
    prompt = soft_prompt(2, 3)
    with torch.no_grad():
        assert torch.equal(
            fresh(prompt, INSTRUCTIONS, RESPONSES).loss, adapter(prompt, INSTRUCTIONS, RESPONSES).loss
        )
    with pytest.raises(LLMInputError, match="trainable state"):
        fresh.load_trainable_state({"llm.nothing": torch.zeros(1)})


def test_adapter_loading_errors(checkpoints, tmp_path):
    load_tiny(checkpoints["llama"], lora=True, lora_rank=4).save_adapter(str(tmp_path / "rank4"))
    with pytest.raises(CheckpointError, match="r is 4"):
        load_tiny(checkpoints["llama"], lora=True, lora_rank=8).load_adapter(str(tmp_path / "rank4"))
    with pytest.raises(CheckpointError, match=r"no adapter_config\.json"):
        load_tiny(checkpoints["llama"], lora=True).load_adapter(str(tmp_path / "missing"))
    with pytest.raises(LLMInputError, match="lora=false"):
        load_tiny(checkpoints["llama"]).load_adapter(str(tmp_path / "rank4"))
