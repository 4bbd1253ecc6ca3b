"""Step-indexed batches: the data position is the step number, so a resumed run sees the same data.

Item `p` of the run (p = step * batch_size + j) is clip `perm_e[p mod N]` of epoch `e = p div N`,
where `perm_e` is a permutation seeded by (seed, e). A global batch is split first into
accumulation micro-batches, then into one contiguous slice per process, so 2 processes with
global batch B see exactly the clips that 1 process with batch B sees.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from mint.errors import ConfigError


def epoch_permutation(num_items: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_items)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for steps `start_step .. max_steps-1`, this process's micro-batches of (epoch, index)."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        max_steps: int,
        seed: int,
        start_step: int = 0,
        grad_accum_steps: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1:
            raise ConfigError("data: the dataset is empty")
        if batch_size % (grad_accum_steps * world_size):
            raise ConfigError(
                f"trainer.batch_size: {batch_size} must be divisible by grad_accum_steps x processes "
                f"= {grad_accum_steps} x {world_size}"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.seed = seed
        self.start_step = start_step
        self.grad_accum_steps = grad_accum_steps
        self.rank = rank
        self.world_size = world_size
        self.micro_size = batch_size // (grad_accum_steps * world_size)
        self._permutations: dict[int, np.ndarray] = {}

    def _item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_items)
        if epoch not in self._permutations:
            self._permutations = {epoch: epoch_permutation(self.num_items, self.seed, epoch)}
        return epoch, int(self._permutations[epoch][offset])

    def micro_batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        per_micro = self.batch_size // self.grad_accum_steps
        first = step * self.batch_size + micro * per_micro + self.rank * self.micro_size
        return [self._item(first + j) for j in range(self.micro_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.grad_accum_steps):
                yield self.micro_batch(step, micro)

    def __len__(self) -> int:
        return (self.max_steps - self.start_step) * self.grad_accum_steps
