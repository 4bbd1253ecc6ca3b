"""Process-group helpers: the one place in mint that reads rank and world size.

Every function works without an initialised process group (and on builds of torch without
`torch.distributed`): it then behaves as a group of one, so library code and tests run in a
single process unchanged. Collectives assume every rank passes a tensor of the same shape, which
is what `drop_last=True` or accelerate's `even_batches` guarantee for per-rank batches.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, NoReturn

import torch
import torch.distributed as dist


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_info() -> tuple[int, int]:
    """Return `(rank, world_size)`; `(0, 1)` when no process group is initialised."""
    if not _group_active():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    """True on rank 0, and always when running without a process group."""
    return world_info()[0] == 0


def shutdown() -> bool:
    """Destroy the process group, if one is initialised; return whether there was one."""
    if not _group_active():
        return False
    dist.destroy_process_group()
    return True


def end_process(code: int) -> NoReturn:
    """Exit with status `code`; a process that belonged to a process group skips interpreter finalisation.

    Destroying the group does not stop its Gloo worker threads while anything still holds it (FSDP's hooks
    do, until the interpreter's final collection), and a worker releases the tensors of a collective it
    has finished only once it holds the GIL. A rank that goes from its last collective straight to
    finalisation can leave a worker waiting; a thread that asks for the GIL during finalisation is
    stopped inside a C++ destructor and the process aborts (SIGABRT, "terminate called without an active
    exception"; rank 1 of the two-process FSDP run, in 5 launches of 63). A barrier before closing does
    not help (2 in 40): the barrier's own work then holds the finished one. So such a process flushes
    its logs and standard streams and leaves with `os._exit` (no abort in 150 launches): what it wrote is
    complete (mint writes files atomically and closes them), only finalisation is skipped.
    """
    if shutdown():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward hands each rank the gradient of its own slice.

    Every rank's loss depends on every rank's features, so the gradient of a rank's input is the
    sum over ranks of the gradients flowing into its slice of the gathered tensor: an all-reduce
    of the full gradient followed by taking the local rows. Unlike reduce-scatter this works on
    every backend, gloo included.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        rank, world_size = world_info()
        ctx.rank = rank
        ctx.local_rows = tensor.shape[0]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.local_rows
        return grad[start : start + ctx.local_rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from all ranks along dim 0, keeping the autograd graph.

    Rank r's rows occupy `[r * B, (r + 1) * B)` of the result. Identity with one process.
    """
    if world_info()[1] == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from all ranks along dim 0, detached from the graph."""
    world_size = world_info()[1]
    if world_size == 1:
        return tensor.detach()
    tensor = tensor.detach().contiguous()
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor)
    return torch.cat(parts, dim=0)


def gather_objects(obj: Any) -> list[Any]:
    """Collect one picklable object per rank (e.g. a list of captions), ordered by rank.

    Meant for small payloads: objects are pickled and sent through the default group.
    """
    world_size = world_info()[1]
    if world_size == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def global_token_share(local_tokens: torch.Tensor) -> float:
    """This process's number of loss tokens over the global batch's, times the number of processes.

    A token-mean loss (a caption's or a response's negative log-likelihood) averages over this
    process's tokens only. Multiplied by this share, its mean over processes (what the logs report,
    and what DDP's averaged gradients follow) is the mean over every token of the global batch, as
    one process with the whole batch computes it, however unevenly the tokens are spread. 1.0 with
    one process. `local_tokens`: a one-element integer tensor on the device the group communicates on.
    """
    world_size = world_info()[1]
    if world_size == 1:
        return 1.0
    local = local_tokens.detach().reshape(1)
    total = int(gather_no_grad(local).sum())
    return float(local) * world_size / max(total, 1)
