"""Fully sharded training (PyTorch FSDP2, `fully_shard`) for models whose frozen LLM does not fit one device.

Every parameter is split across the processes, frozen or not: each transformer block of the frozen
models (the classes a Hugging Face model lists in `_no_split_modules`, e.g. `T5Block`,
`LlamaDecoderLayer`) is its own unit, gathered just before it runs and freed right after; everything
else (the Bridge-Net, heads, LayerNorm, `llm_proj`, embeddings) is the root unit, gathered once per
step. The Bridge-Net runs several times per stage-1 step, which is why it stays in the root unit:
its gradients are then reduced once, after the whole backward pass. `fully_shard` cannot split a
0-dimensional parameter (the learnable temperature); those stay whole on every rank and the trainer
averages their gradients itself (`average_gradients`), as DDP would.

Gradients and optimizer state are shards too; the functions below turn them back into whole
tensors for a checkpoint (`full_tensors`, `full_optimizer_state`) and whole tensors back into
shards on resume (`load_full_weights`, `shard_optimizer_state`), so a checkpoint is the same files
as one written without sharding.

The trainer shards itself rather than through `accelerator.prepare`: accelerate only shards on GPUs
(on CPUs it ignores FSDP), and the wrapping above needs knowledge of the model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from mint.errors import MintError

# The variable `accelerate launch` sets from `distributed_type: FSDP`; accelerate reads it the same way.
FSDP_ENV = "ACCELERATE_USE_FSDP"


def fsdp_requested() -> bool:
    """True when the launch asks for FSDP (`accelerate launch` with an FSDP config, or the variable set
    by hand for `torchrun`)."""
    return os.environ.get(FSDP_ENV, "false").lower() == "true"


def block_class_names(model: nn.Module) -> set[str]:
    """Names of the transformer-block classes of every Hugging Face model inside `model`."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def _broadcast_trainable(model: nn.Module, device: torch.device) -> None:
    """Give every rank rank 0's trainable weights before sharding.

    `fully_shard` keeps each rank's own slice of the weights it is given, so ranks whose fresh
    weights differed would train a mix of them; DDP guards against this with the same broadcast.
    """
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                on_device = parameter.detach().to(device)
                dist.broadcast(on_device, src=0)
                parameter.copy_(on_device)


def shard_model(model: nn.Module, device: torch.device) -> list[nn.Parameter]:
    """Shard `model` in place across the process group (see the module docstring).

    Its parameters become `DTensor` shards on `device`, so an optimizer must be built afterwards.
    Returns the parameters left whole (0-dimensional), whose gradients `average_gradients` syncs.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise MintError(
            f"{FSDP_ENV}=true: FSDP needs a process group; launch with `torchrun` or `accelerate launch`"
        )
    if isinstance(model, FSDPModule):
        raise MintError(f"{type(model).__name__}: already sharded; pass the model before sharding")
    if os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() == "true":
        # transformers then loads real weights on rank 0 only and expects them broadcast, which we do not.
        raise MintError(
            "FSDP_CPU_RAM_EFFICIENT_LOADING=true (fsdp_cpu_ram_efficient_loading in the accelerate config): "
            "not supported; every process loads the frozen models itself. Set it to false"
        )
    _broadcast_trainable(model, device)
    whole = [parameter for parameter in model.parameters() if parameter.dim() == 0]
    for parameter in whole:
        parameter.data = parameter.data.to(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    blocks = block_class_names(model)
    # Children before parents, as fully_shard requires; the model itself last, as the root unit.
    for module in reversed(list(model.modules())):
        if module is not model and type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, ignored_params=set(whole))
    fully_shard(model, mesh=mesh, ignored_params=set(whole))
    return whole


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average the gradients of the whole (unsharded) trainable `parameters` over the ranks.

    A collective: a parameter without a gradient on this rank contributes zeros, so every rank
    makes the same calls.
    """
    for parameter in parameters:
        if not parameter.requires_grad:
            continue
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad.div_(dist.get_world_size())


@contextlib.contextmanager
def no_gradient_sync(model: nn.Module) -> Iterator[None]:
    """Accumulate whole gradients locally (no reduce-scatter) for the micro-batches before the last."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def full_tensors(state: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """`state` (or its entries `keys`) with every `DTensor` replaced by the whole tensor, on the CPU.

    A collective: every rank must call it with the same keys in the same order.
    """
    full: dict[str, Any] = {}
    for key in state if keys is None else keys:
        value = state[key]
        if isinstance(value, DTensor):
            value = value.full_tensor()
        full[key] = value.detach().contiguous().cpu() if isinstance(value, torch.Tensor) else value
    return full


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with whole tensors: what the same optimizer would hold without sharding."""
    state = optimizer.state_dict()
    return {
        "state": {param_id: full_tensors(values) for param_id, values in state["state"].items()},
        "param_groups": state["param_groups"],
    }


def _shard_like(value: torch.Tensor, target: DTensor) -> DTensor:
    # Every rank holds the whole tensor, so each keeps its own slice without any communication.
    return distribute_tensor(
        value.to(dtype=target.dtype), target.device_mesh, target.placements, src_data_rank=None
    )


def load_full_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy whole tensors into the sharded `model`; return the names it does not have."""
    own = model.state_dict()
    unexpected = sorted(set(weights) - set(own))
    with torch.no_grad():
        for name, value in weights.items():
            if name not in own:
                continue
            target = own[name]
            if tuple(value.shape) != tuple(target.shape):
                raise MintError(
                    f"checkpoint weight {name}: shape {tuple(value.shape)}, the model's is {tuple(target.shape)}"
                )
            if isinstance(target, DTensor):
                target.copy_(_shard_like(value, target))
            else:
                target.copy_(value)
    return unexpected


def shard_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """A whole-tensor optimizer state (as `full_optimizer_state` returns) cut to this rank's shards,
    ready for `optimizer.load_state_dict`."""
    params = [param for group in optimizer.param_groups for param in group["params"]]
    saved_ids = [param_id for group in state["param_groups"] for param_id in group["params"]]
    # load_state_dict pairs saved ids with parameters by position, the pairing used here.
    param_of = dict(zip(saved_ids, params, strict=True))
    sharded: dict[int, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        param = param_of[param_id]
        sharded[param_id] = {
            key: _shard_like(value, param)
            if isinstance(param, DTensor) and isinstance(value, torch.Tensor) and value.shape == param.shape
            else value
            for key, value in values.items()
        }
    return {"state": sharded, "param_groups": state["param_groups"]}


def gather_into_model(model: nn.Module, names: Iterable[str]) -> None:
    """Replace the sharded parameters `names` with whole, ordinary parameters, on every rank.

    After training, so that the caller's `model.save_pretrained` (on rank 0 alone, with no collective)
    reads whole weights. Parameters left out (the frozen ones) stay sharded; the model is then meant
    for saving, not for more sharded training.
    """
    parameters = dict(model.named_parameters())
    for name in names:
        parameter = parameters.get(name)
        if not isinstance(parameter, DTensor):
            continue
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        whole = parameter.full_tensor().detach()
        setattr(owner, leaf, nn.Parameter(whole, requires_grad=parameter.requires_grad))
