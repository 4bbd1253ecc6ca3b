"""The training loop, shared by both stages: accelerate for devices, precision and processes.

Runs as one plain process (no process group needed) and under `accelerate launch` / `torchrun`,
data-parallel (DDP) or fully sharded (FSDP, `mint.training.fsdp`).
The data position is the step number (see `mint.data.sampler`), so a run stopped and resumed from
a checkpoint logs exactly the losses of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mint.data.sampler import StepBatchSampler
from mint.distributed import world_info
from mint.errors import MintError
from mint.hardware import resolve_precision
from mint.storage import atomic_write_text
from mint.training import fsdp
from mint.training.checkpoint import latest_valid_checkpoint, load_checkpoint, save_checkpoint
from mint.training.config import TrainerConfig
from mint.training.optim import parameter_groups, warmup_cosine

logger = logging.getLogger(__name__)

# A loss function gets the unwrapped-or-wrapped model, a batch on the device and a seeded generator,
# and returns the loss to minimise plus named scalars to log (e.g. {"loss_atc": ...}).
LossFn = Callable[[nn.Module, dict, torch.Generator], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class NonFiniteLossError(MintError):
    """Too many steps produced a NaN or infinite loss."""


@dataclass
class TrainResult:
    final_step: int
    skipped_nonfinite: int
    history: list[dict] = field(default_factory=list)


def _move(batch: dict, device: torch.device) -> dict:
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }


def _step_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + micro)


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def build_accelerator(precision: str) -> Accelerator:
    """An Accelerator that counts the same processes as the process group.

    Under `torchrun` on a machine without a GPU, accelerate starts the process group but reports
    one process unless told it runs on CPU; every rank would then train on the whole global batch.
    FSDP is the trainer's own (`mint.training.fsdp`), whatever accelerate's distributed type.
    """
    multi_process = int(os.environ.get("WORLD_SIZE", "1")) > 1
    mixed_precision = "bf16" if resolve_precision(precision) == "bf16" else "no"
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        # accelerate keeps one precision per process and refuses another, but one process may run stages
        # of different precisions (`mint demo`: stage 1 then stage 2). Only the precision state is
        # dropped; the process state (process group, device) stays.
        AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        cpu=multi_process and not _has_accelerator_device(),
    )
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # Checkpoints hold the whole trainable and optimizer state; ZeRO's partitioned state is not gathered.
        raise MintError(
            "DEEPSPEED: not supported by the trainer, whose checkpoints need the whole trainable and optimizer "
            "state; use FSDP (configs/accelerate/fsdp.yaml) to shard a large frozen LLM, or DDP"
        )
    if accelerator.num_processes != world_info()[1]:
        raise MintError(
            f"accelerate sees {accelerator.num_processes} process(es) but the process group has "
            f"{world_info()[1]}; launch with `torchrun` or `accelerate launch` (see docs/distributed.md)"
        )
    return accelerator


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        config: TrainerConfig,
        output_dir: str | os.PathLike,
        dataset: Dataset,
        collate_fn: Callable[[list], dict],
        loss_fn: LossFn,
        trainable_state: Callable[[nn.Module], dict[str, torch.Tensor]],
        on_gradients: Callable[[int, nn.Module], None] | None = None,
    ) -> None:
        self.config = config
        # Called with the step number and the model once a step's gradients are complete (accumulated and
        # averaged over processes), before clipping and the optimizer: what a check of gradients reads, or a
        # schedule that holds some parameters still by dropping their gradients (stage 2's projector-only
        # steps).
        self.on_gradients = on_gradients
        self.output_dir = Path(output_dir)
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.loss_fn = loss_fn
        self.trainable_state = trainable_state
        self.accelerator = build_accelerator(config.precision)
        self.sharded = fsdp.fsdp_requested()
        self.model = model
        # What a checkpoint holds, named before sharding: afterwards the entries are gathered by name.
        self._saved_names = list(trainable_state(model)) if self.sharded else []
        self._whole_parameters = fsdp.shard_model(model, self.accelerator.device) if self.sharded else []
        self.optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay), lr=config.lr, betas=config.betas
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: warmup_cosine(step, config.warmup_steps, config.max_steps, config.min_lr_ratio),
        )

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def _resume(self) -> tuple[int, int]:
        path = latest_valid_checkpoint(self.checkpoint_dir)
        if path is None:
            logger.info(
                "resume requested but no checkpoint under %s: starting from step 0", self.checkpoint_dir
            )
            return 0, 0
        shard = (lambda state: fsdp.shard_optimizer_state(self.optimizer, state)) if self.sharded else None
        weights, state = load_checkpoint(path, self.optimizer, self.scheduler, shard)
        if self.sharded:
            unexpected = fsdp.load_full_weights(self.model, weights)
        else:
            unexpected = self.model.load_state_dict(weights, strict=False).unexpected_keys
        if unexpected:
            raise MintError(f"{path}: checkpoint has weights the model does not: {unexpected[:5]}")
        logger.info("resumed from %s (step %d)", path, state["step"])
        return state["step"], state.get("skipped_nonfinite", 0)

    def _step_log(self, name: str, start_step: int) -> Path:
        """The JSON-lines log `name` without the lines logged after `start_step` (the resumed run logs them
        again)."""
        path = self.output_dir / name
        if path.exists():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    step = json.loads(line)["step"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    # A line cut short by a crash or a full disk; its step is logged again below.
                    logger.warning("%s: dropping an incomplete line: %.80s", path, line)
                    continue
                if step <= start_step:
                    kept.append(line)
            # Atomic: a crash while trimming must not lose the lines that are kept.
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        return path

    def fit(self, resume: bool = False) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        self.output_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        start_step, skipped = self._resume() if resume else (0, 0)

        sampler = StepBatchSampler(
            len(self.dataset),
            config.batch_size,
            config.max_steps,
            config.seed,
            start_step=start_step,
            grad_accum_steps=config.grad_accum_steps,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
        )
        # Its own generator: DataLoader would otherwise draw a worker seed from the global RNG, and a
        # resumed run would then see different dropout masks from an uninterrupted one.
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=self.collate_fn,
            num_workers=config.num_workers,
            generator=torch.Generator().manual_seed(config.seed),
        )
        if self.sharded:
            model, optimizer = self.model, self.optimizer
        else:
            model, optimizer = accelerator.prepare(self.model, self.optimizer)
        model.train()

        # metrics.jsonl holds what the run computed (the same in two deterministic runs); timing.jsonl the
        # wall clock.
        step_logs = (
            (self._step_log("metrics.jsonl", start_step), self._step_log("timing.jsonl", start_step))
            if accelerator.is_main_process
            else None
        )
        writer = self._tensorboard() if accelerator.is_main_process else None
        progress = tqdm(
            total=config.max_steps,
            initial=start_step,
            desc="training",
            disable=not (config.progress_bar and accelerator.is_main_process),
        )
        result = TrainResult(final_step=start_step, skipped_nonfinite=skipped)
        sums: dict[str, float] = {}
        micro, step, started = 0, start_step, time.perf_counter()
        for batch in loader:
            is_last_micro = micro == config.grad_accum_steps - 1
            generator = _step_generator(config.seed, step, micro)
            with accelerator.autocast():
                if is_last_micro:
                    loss, logs = self.loss_fn(model, _move(batch, accelerator.device), generator)
                else:
                    with self._no_sync(model):
                        loss, logs = self.loss_fn(model, _move(batch, accelerator.device), generator)
            scaled = loss / config.grad_accum_steps
            if is_last_micro:
                accelerator.backward(scaled)
            else:
                with self._no_sync(model):
                    accelerator.backward(scaled)
            for name, value in {"loss": loss, **logs}.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / config.grad_accum_steps
            micro += 1
            if not is_last_micro:
                continue
            fsdp.average_gradients(self._whole_parameters)
            if self.on_gradients is not None:
                self.on_gradients(step, model)

            finite = torch.tensor([float(math.isfinite(sums["loss"]))], device=accelerator.device)
            if accelerator.reduce(finite, reduction="min").item() < 1:
                optimizer.zero_grad(set_to_none=True)
                result.skipped_nonfinite += 1
                logger.warning(
                    "step %d: non-finite loss, step skipped (%d so far)", step, result.skipped_nonfinite
                )
                if result.skipped_nonfinite > config.max_nonfinite_steps:
                    raise NonFiniteLossError(
                        f"{result.skipped_nonfinite} steps had a NaN/inf loss "
                        f"(trainer.max_nonfinite_steps={config.max_nonfinite_steps}); stopping"
                    )
            else:
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            step += 1
            micro = 0
            progress.update(1)

            averaged = {
                name: accelerator.reduce(
                    torch.tensor([value], device=accelerator.device), reduction="mean"
                ).item()
                for name, value in sorted(sums.items())
            }
            sums = {}
            if step % config.log_every == 0 or step == config.max_steps:
                record = {"step": step, **averaged, "lr": lr}
                elapsed = time.perf_counter() - started
                timing = {
                    "step": step,
                    "elapsed_s": elapsed,
                    "samples_per_s": config.batch_size * (step - start_step) / elapsed,
                }
                result.history.append(record)
                progress.set_postfix(loss=f"{averaged['loss']:.3f}")
                if step_logs is not None:
                    for path, line in zip(step_logs, (record, timing), strict=True):
                        with path.open("a") as handle:
                            handle.write(json.dumps(line) + "\n")
                if writer is not None:
                    for name, value in {**record, "samples_per_s": timing["samples_per_s"]}.items():
                        if name != "step":
                            writer.add_scalar(f"train/{name}", value, step)
            if step % config.save_every == 0 or step == config.max_steps:
                self._save(step, result.skipped_nonfinite)
        progress.close()
        if writer is not None:
            writer.close()
        if self.sharded:
            # The caller saves the model on rank 0 alone; gathering needs every rank, so it happens here.
            fsdp.gather_into_model(self.model, self._saved_names)
        result.final_step = step
        return result

    @contextmanager
    def _no_sync(self, model: nn.Module) -> Iterator[None]:
        context = fsdp.no_gradient_sync(model) if self.sharded else self.accelerator.no_sync(model)
        with context:
            yield

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer | dict] | None:
        """The trainable weights and the optimizer (or its whole-tensor state) rank 0 writes; None elsewhere."""
        is_main = self.accelerator.is_main_process
        if self.sharded:
            # Every rank takes part in gathering the whole tensors.
            weights = fsdp.full_tensors(self.model.state_dict(), self._saved_names)
            optimizer = fsdp.full_optimizer_state(self.optimizer)
            return (weights, optimizer) if is_main else None
        if not is_main:
            return None
        return self.trainable_state(self.accelerator.unwrap_model(self.model)), self.optimizer

    def _save(self, step: int, skipped: int) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        state = self._checkpoint_state()
        if state is not None:
            weights, optimizer = state
            save_checkpoint(
                self.checkpoint_dir,
                step,
                weights,
                optimizer,
                self.scheduler,
                {"skipped_nonfinite": skipped},
                self.config.keep_last,
            )
        accelerator.wait_for_everyone()

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed: metrics go to metrics.jsonl only")
            return None
        return SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
