"""Run under torchrun by test_training_distributed.py: a real stage-1 run (`pretraining_trainer`) that also
saves the first step's averaged gradients (rank 0), optionally with one piece of the distributed training
broken on purpose, to show that the test would catch it.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/gradient_probe.py BREAK OUT [overrides]

BREAK: `none`; `no-allreduce` (each process keeps the gradients of its own half batch); `local-loss`
(each process computes its losses over its own half batch: in-batch negatives, hard negatives and token
means local, as if no process group existed).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from mint import distributed
from mint.config import load_config
from mint.training.config import PretrainConfig
from mint.training.pretrain import fit_and_save, pretraining_trainer


def main(breakage: str, output_dir: str, overrides: list[str]) -> None:
    config = load_config(
        PretrainConfig, "configs/pretrain/tiny.yaml", [f"output_dir={output_dir}", *overrides]
    )
    trainer = pretraining_trainer(config)
    first_step: dict[str, torch.Tensor] = {}

    def keep_first_gradients(step: int, model: torch.nn.Module) -> None:
        if step == 0:
            first_step.update(
                {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
            )

    trainer.on_gradients = keep_first_gradients
    if breakage == "no-allreduce":
        loss_fn = trainer.loss_fn

        def loss_without_sync(wrapped, batch, generator):
            with wrapped.no_sync():  # DDP skips the all-reduce of the backward that follows this forward
                return loss_fn(wrapped, batch, generator)

        trainer.loss_fn = loss_without_sync
        fit_and_save(trainer, resume=False)
    elif breakage == "local-loss":
        # The trainer and DDP still see the process group; the losses do not.
        with _losses_see_no_group():
            fit_and_save(trainer, resume=False)
    elif breakage == "none":
        fit_and_save(trainer, resume=False)
    else:
        raise SystemExit(f"unknown BREAK {breakage!r}")
    if trainer.accelerator.is_main_process:
        torch.save(
            {name.removeprefix("module."): g for name, g in first_step.items()}, Path(output_dir) / "grads.pt"
        )


@contextmanager
def _losses_see_no_group():
    active = distributed._group_active
    distributed._group_active = lambda: False
    try:
        yield
    finally:
        distributed._group_active = active


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
    distributed.end_process(0)
