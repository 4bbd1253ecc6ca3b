"""Stage 2 under data parallelism: two CPU processes (gloo, DistributedDataParallel) with half of a batch
each give the loss, the gradients and the updated weights of one process with the whole batch.

The halves hold responses of very different lengths, so the two processes average their loss over
different numbers of response tokens; only a loss normalised by the global token count makes DDP's
averaged gradient equal the single-process one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from mint.config import load_config
from mint.llm.config import LLMConfig
from mint.modeling import MintConfig, MintModel
from mint_testing import (
    GRADIENT_ATOL_OF_SCALE,
    GRADIENT_RTOL,
    gradient_mismatches,
    run_gloo_workers,
    tiny_model_overrides,
)

WORLD = 2
LLMS = ("t5", "llama")
FRAMES = 12
LR = 0.5
INSTRUCTIONS = ["describe the sound", "what is making this sound?", "caption this clip", "what do you hear?"]
# Rank 0 gets the first two (one or two tokens each), rank 1 the last two (a dozen each).
RESPONSES = [
    "rain",
    "a dog",
    "a loud siren wails far away while an engine roars and a car horn honks",
    "birds sing near the water as wind blows through the tall trees at night",
]


def _model(llm: str) -> MintModel:
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    config = dataclasses.replace(
        config, llm=LLMConfig(name_or_path=f"random:{llm}", max_instruction_length=16, max_response_length=16)
    )
    torch.manual_seed(0)
    model = MintModel.from_config(config)
    model.freeze_stage2_idle_parameters()
    return model.train()


def _features(model: MintModel) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(len(RESPONSES), FRAMES, model.encoder.hidden_size, generator=generator)


def _one_step(llm: str, rows: slice, wrap: bool) -> dict:
    """Loss, gradients and updated trainable weights after one SGD step on `rows` of the batch."""
    model = _model(llm)
    features = _features(model)[rows]
    trained = DistributedDataParallel(model) if wrap else model
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    loss = trained(
        features=features,
        feature_mask=torch.ones(features.shape[:2], dtype=torch.bool),
        instructions=INSTRUCTIONS[rows],
        responses=RESPONSES[rows],
    ).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    optimizer.step()
    weights = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    return {"loss": loss.detach(), "grads": grads, "weights": weights}


def _rank_results(rank: int) -> dict:
    half = len(RESPONSES) // WORLD
    rows = slice(rank * half, (rank + 1) * half)
    return {llm: _one_step(llm, rows, wrap=True) for llm in LLMS}


def _response_tokens(llm: str, rows: slice) -> int:
    adapter = _model(llm).llm
    return sum(len(ids) for ids in adapter._response_ids(RESPONSES[rows]))


def test_two_processes_give_the_loss_gradients_and_step_of_one(tmp_path: Path) -> None:
    ranks = run_gloo_workers(_rank_results, WORLD, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for llm in LLMS:
            # The premise: the halves carry clearly different numbers of response tokens.
            assert _response_tokens(llm, slice(2, 4)) >= 4 * _response_tokens(llm, slice(0, 2))
            whole = _one_step(llm, slice(None), wrap=False)
            per_rank = [result[llm] for result in ranks]
            # What the trainer logs: the mean of the processes' losses.
            torch.testing.assert_close(sum(r["loss"] for r in per_rank) / WORLD, whole["loss"])
            # Rounding only, within the tolerance argued in mint_testing (the largest deviation measured,
            # on an AVX2-only AMD EPYC: 2.3e-6 of the largest gradient, a quarter of it).
            assert all(grad.abs().sum() > 0 for grad in whole["grads"].values()), (
                f"{llm}: a tensor gets no gradient"
            )
            scale = max(float(grad.abs().max()) for grad in whole["grads"].values())
            for result in per_rank:
                assert gradient_mismatches(result["grads"], whole["grads"]) == {}, llm
                # One SGD step moves each weight by LR x its gradient, rounded once more.
                for name, weight in whole["weights"].items():
                    torch.testing.assert_close(
                        result["weights"][name],
                        weight,
                        rtol=GRADIENT_RTOL,
                        atol=LR * GRADIENT_ATOL_OF_SCALE * scale,
                        msg=f"{llm} weight {name}",
                    )
    finally:
        torch.set_num_threads(threads)
