"""Soft prompts of different lengths in one batch (`prompt_mask`): each row is read exactly as it would be
alone with only its real slots, in loss, scores and generation, for every adapter kind."""

from __future__ import annotations

import pytest
import torch
from llm_testing import load_tiny, reference_greedy, soft_prompt, until_eos

from mint.llm import LLMInputError

INSTRUCTIONS = ["describe the sound", "what is this", "name the source in a few words"]
RESPONSES = ["a dog barks", "rain falls near the car", "cow"]
CANDIDATES = ["a dog barks", "cow", "the siren wails"]
# Real slots per row: the longest row fills the prompt, the others leave 2 and 3 of 5 unused.
REAL = [5, 3, 2]


def _masked(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    prompt = soft_prompt(len(REAL), max(REAL), seed=seed, scale=2.0)
    mask = torch.arange(max(REAL)) < torch.tensor(REAL)[:, None]
    # What sits in the unused slots must not matter: fill them with values far from the rest.
    return prompt.masked_fill(~mask[..., None], 1e3), mask


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2"])
def test_each_row_reads_only_its_real_slots(checkpoints, name):
    adapter = load_tiny(checkpoints[name])
    prompt, mask = _masked(seed=5)
    alone = [prompt[row : row + 1, :count] for row, count in enumerate(REAL)]
    with torch.no_grad():
        # The batch loss is the token-weighted mean of each row's loss alone.
        batch = adapter(prompt, INSTRUCTIONS, RESPONSES, prompt_mask=mask)
        rows = [adapter(alone[row], [INSTRUCTIONS[row]], [RESPONSES[row]]) for row in range(len(REAL))]
        expected = sum(out.loss * out.tokens for out in rows) / sum(out.tokens for out in rows)
        torch.testing.assert_close(batch.loss, expected, rtol=1e-5, atol=1e-6)

        scores = adapter.score(prompt, INSTRUCTIONS, CANDIDATES, prompt_mask=mask)
        for row in range(len(REAL)):
            torch.testing.assert_close(
                scores[row],
                adapter.score(alone[row], [INSTRUCTIONS[row]], CANDIDATES)[0],
                rtol=1e-5,
                atol=1e-5,
            )

        generated = adapter.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=5, prompt_mask=mask)
        for row, instruction in enumerate(INSTRUCTIONS):
            expected_ids = reference_greedy(adapter, name, alone[row][0], instruction, 5)
            assert until_eos(generated[row].tolist()) == expected_ids


def test_a_bad_prompt_mask_is_refused(checkpoints):
    adapter = load_tiny(checkpoints["llama"])
    prompt, mask = _masked(seed=1)
    for bad in (
        mask.long(),  # not bool
        mask[:, :2],  # the wrong shape
        mask & torch.tensor([True, False, True])[:, None],  # a row without a real slot
    ):
        with pytest.raises(LLMInputError, match="prompt_mask"):
            adapter(prompt, INSTRUCTIONS, RESPONSES, prompt_mask=bad)
