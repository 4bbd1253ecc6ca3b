from __future__ import annotations

import numpy as np
import pytest

from mint.data.sampler import StepBatchSampler, epoch_permutation
from mint.errors import ConfigError


def _flatten(sampler):
    return [item for batch in sampler for item in batch]


def test_every_clip_once_per_epoch_in_a_seeded_order():
    sampler = StepBatchSampler(num_items=10, batch_size=4, max_steps=5, seed=3)
    items = _flatten(sampler)
    assert len(items) == 20
    first_epoch = [index for epoch, index in items if epoch == 0]
    assert first_epoch == list(np.random.default_rng([3, 0]).permutation(10))
    assert sorted(index for epoch, index in items if epoch == 1) == list(range(10))


def test_resumed_sampler_continues_the_same_sequence():
    full = list(StepBatchSampler(num_items=7, batch_size=3, max_steps=6, seed=1))
    resumed = list(StepBatchSampler(num_items=7, batch_size=3, max_steps=6, seed=1, start_step=4))
    assert resumed == full[4:]


def test_processes_and_accumulation_split_the_same_global_batches():
    single = list(StepBatchSampler(num_items=50, batch_size=8, max_steps=3, seed=0))
    ranks = [
        list(
            StepBatchSampler(
                num_items=50, batch_size=8, max_steps=3, seed=0, grad_accum_steps=2, rank=r, world_size=2
            )
        )
        for r in range(2)
    ]
    for step in range(3):
        pieces = []
        for micro in range(2):
            for rank in range(2):
                pieces += ranks[rank][step * 2 + micro]
        assert pieces == single[step]


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        StepBatchSampler(num_items=10, batch_size=6, max_steps=1, seed=0, world_size=4)
    with pytest.raises(ConfigError, match="empty"):
        StepBatchSampler(num_items=0, batch_size=2, max_steps=1, seed=0)


def test_permutation_depends_on_seed_and_epoch():
    assert not np.array_equal(epoch_permutation(20, 0, 0), epoch_permutation(20, 0, 1))
    assert np.array_equal(epoch_permutation(20, 5, 2), epoch_permutation(20, 5, 2))
