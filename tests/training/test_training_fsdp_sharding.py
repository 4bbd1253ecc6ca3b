"""What `mint.training.fsdp` shards and how whole tensors pass to and from the shards, in one process.

A one-process gloo group is enough to build the FSDP2 units and the DTensors; how the slices are
cut across two processes is covered by `test_training_fsdp.py`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from mint.config import load_config
from mint.errors import MintError
from mint.llm.config import LLMConfig
from mint.modeling import MintConfig, MintModel
from mint.training import fsdp
from mint_testing import tiny_model_overrides

CPU = torch.device("cpu")


def _model() -> MintModel:
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    config = dataclasses.replace(
        config, llm=LLMConfig(name_or_path="random:t5", max_instruction_length=24, max_response_length=8)
    )
    return MintModel.from_config(config)


@pytest.fixture
def group(tmp_path) -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_sharding_needs_a_process_group():
    with pytest.raises(MintError, match="process group"):
        fsdp.shard_model(torch.nn.Linear(2, 2), CPU)


def test_each_llm_block_is_a_unit_and_the_rest_is_the_root(group):
    model = _model()
    t5 = model.llm.llm.config
    blocks = [module for module in model.modules() if type(module).__name__ == "T5Block"]
    assert len(blocks) == t5.num_layers + t5.num_decoder_layers

    whole = fsdp.shard_model(model, CPU)

    assert isinstance(model, FSDPModule)
    assert all(isinstance(block, FSDPModule) for block in blocks)
    # The Bridge-Net runs several times per step, so none of its parts is a unit of its own.
    assert not any(isinstance(module, FSDPModule) for module in model.bridge.modules())
    # Only the 0-dimensional temperature stays an ordinary tensor; everything else is a shard.
    assert [parameter.dim() for parameter in whole] == [0]
    assert [name for name, p in model.named_parameters() if not isinstance(p, DTensor)] == [
        name for name, p in model.named_parameters() if p is whole[0]
    ]


def test_whole_tensors_pass_to_and_from_the_shards(group):
    model = _model()
    plain = copy.deepcopy(model)
    names = list(model.trainable_state_dict())
    fsdp.shard_model(model, CPU)

    gathered = fsdp.full_tensors(model.state_dict(), names)
    for name, tensor in plain.trainable_state_dict().items():
        assert not isinstance(gathered[name], DTensor)
        torch.testing.assert_close(gathered[name], tensor, rtol=0, atol=0, msg=name)

    changed = {name: tensor + 1.0 for name, tensor in gathered.items()}
    assert fsdp.load_full_weights(model, {**changed, "not.a.weight": torch.zeros(1)}) == ["not.a.weight"]
    for name, tensor in fsdp.full_tensors(model.state_dict(), names).items():
        torch.testing.assert_close(tensor, changed[name], rtol=0, atol=0, msg=name)


def test_optimizer_state_is_that_of_the_unsharded_optimizer(group):
    model = _model()
    plain = copy.deepcopy(model)
    fsdp.shard_model(model, CPU)

    def one_step(module: torch.nn.Module) -> torch.optim.Optimizer:
        trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-2)
        for index, parameter in enumerate(trainable):
            parameter.grad = torch.full_like(parameter, 0.1 * (index + 1))
        optimizer.step()
        return optimizer

    sharded_optimizer, reference = one_step(model), one_step(plain).state_dict()
    state = fsdp.full_optimizer_state(sharded_optimizer)
    assert state["param_groups"] == reference["param_groups"]
    assert state["state"].keys() == reference["state"].keys()
    for param_id, values in reference["state"].items():
        for key, value in values.items():
            assert not isinstance(state["state"][param_id][key], DTensor)
            torch.testing.assert_close(state["state"][param_id][key], value, msg=f"{param_id}.{key}")

    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    fresh.load_state_dict(fsdp.shard_optimizer_state(fresh, state))
    restored = fsdp.full_optimizer_state(fresh)
    for param_id, values in state["state"].items():
        for key, value in values.items():
            torch.testing.assert_close(restored["state"][param_id][key], value, msg=f"{param_id}.{key}")
