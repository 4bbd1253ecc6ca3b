"""How torch runs a training process: thread count and deterministic kernels, set before any torch work.

Two runs with `trainer.deterministic` on the same machine, with the same thread count and processes,
log the same losses and end with the same weights, bit for bit. What made runs drift apart without it:
the backward of advanced indexing with repeated indices (`x[index]` for the ATM negatives) accumulates
on CPU threads in whatever order they finish; `torch.use_deterministic_algorithms` swaps it (and any
such kernel, on CPU and GPU alike) for an ordered one.
"""

from __future__ import annotations

import logging
import os

import torch

from mint.training.config import TrainerConfig

logger = logging.getLogger(__name__)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads() -> int:
    """OMP_NUM_THREADS when set; else the usable cores shared among this machine's training processes
    (torchrun and accelerate set LOCAL_WORLD_SIZE), so that processes do not fight over cores."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, usable_cores() // max(1, local_processes))


def configure_torch(config: TrainerConfig) -> int:
    """Set the intra-op thread count and deterministic kernels for this process; return the thread count."""
    threads = config.num_threads or default_threads()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(config.deterministic)
    if config.deterministic:
        # cuBLAS needs a fixed workspace to reduce in a fixed order (read when CUDA starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    logger.info(
        "torch: %d thread(s), deterministic kernels %s", threads, "on" if config.deterministic else "off"
    )
    return threads
