"""Distributed helpers: single-process fallbacks and a real two-process gloo run of the ATC loss.

The two-process run checks the property that matters for training: with features gathered with
gradients, the gradients that DDP averages across ranks equal the gradients of the same loss
computed in one process on the whole batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mint.distributed import gather_no_grad, gather_objects, gather_with_grad, is_main_process, world_info
from mint.objectives import ContentMatches, ContrastiveLoss, LearnableTemperature
from mint_testing import run_gloo_workers

WORLD = 2
LOCAL_BATCH = 3
PAIR_IDS = [4, 8, 15, 16, 4, 23]  # pair 0 (rank 0) and pair 4 (rank 1) share a clip


def _problem() -> dict[str, torch.Tensor]:
    """Inputs and a shared projection, identical in every process."""
    generator = torch.Generator().manual_seed(0)
    return {
        "audio": torch.randn(WORLD * LOCAL_BATCH, 4, 6, generator=generator, dtype=torch.float64),
        "text": torch.randn(WORLD * LOCAL_BATCH, 6, generator=generator, dtype=torch.float64),
        "weight": torch.randn(6, 5, generator=generator, dtype=torch.float64),
    }


def _same_ids(local: list[int]) -> ContentMatches:
    """Positives where a local pair and a pair of the global batch share an id (a clip seen twice)."""
    same = torch.tensor([[a == b for b in PAIR_IDS] for a in local])
    return ContentMatches(same, same.clone())


def _loss_and_grads(
    rank: int, world_size: int, rows: slice, gather_grad: bool, positives: ContentMatches | None
) -> dict[str, torch.Tensor]:
    problem = _problem()
    weight = problem["weight"].requires_grad_(True)
    audio = problem["audio"][rows].requires_grad_(True)
    text = problem["text"][rows].requires_grad_(True)
    temperature = LearnableTemperature(init=0.1).double()
    result = ContrastiveLoss(rank, world_size, gather_with_grad=gather_grad)(
        F.normalize(audio @ weight, dim=-1), F.normalize(text @ weight, dim=-1), temperature(), positives
    )
    result.loss.backward()
    return {
        "loss": result.loss.detach(),
        "sim_a2t": result.sim_a2t,
        "weight": weight.grad,
        "temperature": temperature.value.grad,
        "audio": audio.grad,
        "text": text.grad,
    }


def _rank_results(rank: int) -> dict:
    rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    local_pairs = _same_ids(PAIR_IDS[rows])
    return {
        "world_info": world_info(),
        "main": is_main_process(),
        "objects": gather_objects([f"caption {rank}"]),
        "no_grad": gather_no_grad(torch.tensor([rank, 10 + rank])),
        "with_grad": _loss_and_grads(rank, WORLD, rows, True, None),
        "without_grad": _loss_and_grads(rank, WORLD, rows, False, None),
        "pairs": _loss_and_grads(rank, WORLD, rows, True, local_pairs),
    }


def test_no_process_group_means_single_process() -> None:
    assert not dist.is_initialized()
    assert world_info() == (0, 1)
    assert is_main_process()
    tensor = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(tensor) is tensor
    assert torch.equal(gather_no_grad(tensor), tensor) and not gather_no_grad(tensor).requires_grad
    assert gather_objects(["a", "b"]) == [["a", "b"]]


def test_two_process_gradients_equal_single_process_full_batch(tmp_path: Path) -> None:
    ranks = run_gloo_workers(_rank_results, WORLD, tmp_path)
    full = _loss_and_grads(0, 1, slice(None), True, None)
    full_pairs = _loss_and_grads(0, 1, slice(None), True, _same_ids(PAIR_IDS))

    assert [result["world_info"] for result in ranks] == [(0, WORLD), (1, WORLD)]
    assert [result["main"] for result in ranks] == [True, False]
    assert ranks[1]["objects"] == [["caption 0"], ["caption 1"]]
    assert ranks[0]["no_grad"].tolist() == [0, 10, 1, 11]

    for name, reference in (("with_grad", full), ("pairs", full_pairs)):
        per_rank = [result[name] for result in ranks]
        # Each rank averages over its own rows, so the mean of the rank losses is the full loss and
        # the summed parameter gradients are world_size times the full-batch gradients (DDP divides).
        torch.testing.assert_close(sum(r["loss"] for r in per_rank) / WORLD, reference["loss"])
        for key in ("weight", "temperature"):
            torch.testing.assert_close(sum(r[key] for r in per_rank), WORLD * reference[key])
        for key in ("audio", "text"):
            torch.testing.assert_close(torch.cat([r[key] for r in per_rank]), WORLD * reference[key])
        torch.testing.assert_close(torch.cat([r["sim_a2t"] for r in per_rank]), reference["sim_a2t"])

    # Gathering without gradients gives the same loss but loses the cross-rank gradient terms.
    detached = [result["without_grad"] for result in ranks]
    torch.testing.assert_close(sum(r["loss"] for r in detached) / WORLD, full["loss"])
    assert not torch.allclose(sum(r["weight"] for r in detached), WORLD * full["weight"])
