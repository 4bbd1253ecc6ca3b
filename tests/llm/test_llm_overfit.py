"""A frozen tiny LLM can be steered by a learned soft prompt alone: train one soft prompt per example,
then generation reproduces the responses, follows the prompts when they are swapped, and scoring ranks
the trained response first."""

from __future__ import annotations

import pytest
import torch
from llm_testing import EOS, HIDDEN, load_tiny, reference_greedy, reference_logprobs, until_eos, words

from mint.llm import LLMAdapter

# Two instructions of different lengths (so the batch is padded); within each pair only the soft prompt
# tells the examples apart.
INSTRUCTIONS = ["describe the sound"] * 2 + ["what is this sound answer briefly"] * 2
RESPONSES = ["a dog barks", "rain falls", "car horn honks", "cow moos"]
SWAP = [1, 0, 3, 2]
QUERIES = 8
STEPS = 250


@pytest.fixture(scope="module", params=["t5", "llama"])
def trained(request, checkpoints) -> tuple[str, LLMAdapter, torch.Tensor]:
    adapter = load_tiny(checkpoints[request.param])
    torch.manual_seed(0)
    prompts = torch.nn.Parameter(torch.randn(len(RESPONSES), QUERIES, HIDDEN))
    optimizer = torch.optim.Adam([prompts], lr=0.1)
    for _ in range(STEPS):
        loss = adapter(prompts, INSTRUCTIONS, RESPONSES).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.2
    return request.param, adapter, prompts.detach()


def test_greedy_generation_reproduces_and_follows_the_soft_prompt(trained):
    _, adapter, prompts = trained
    assert adapter.generate(prompts, INSTRUCTIONS) == RESPONSES
    assert adapter.generate(prompts[SWAP], INSTRUCTIONS) == [RESPONSES[i] for i in SWAP]
    assert adapter.generate(prompts, INSTRUCTIONS, num_beams=3) == RESPONSES


def test_generation_cut_short_by_max_new_tokens(trained):
    _, adapter, prompts = trained
    assert adapter.generate(prompts, INSTRUCTIONS, max_new_tokens=2) == [
        " ".join(response.split()[:2]) for response in RESPONSES
    ]


def test_generation_equals_uncached_recomputation(trained):
    name, adapter, prompts = trained
    # Off the training points too, where the answers are not the memorised ones.
    noisy = prompts + 0.5 * torch.randn(prompts.shape, generator=torch.Generator().manual_seed(0))
    for soft in (prompts, noisy):
        ids = adapter.generate_ids(soft, INSTRUCTIONS, max_new_tokens=6)
        for row, instruction in enumerate(INSTRUCTIONS):
            assert until_eos(ids[row].tolist()) == reference_greedy(adapter, name, soft[row], instruction, 6)
        assert torch.equal(ids, adapter.generate_ids(soft, INSTRUCTIONS, max_new_tokens=6, use_cache=False))


def test_score_ranks_trained_response_first_and_sums_token_logprobs(trained):
    name, adapter, prompts = trained
    with torch.no_grad():
        scores = adapter.score(prompts, INSTRUCTIONS, RESPONSES)
        assert scores.shape == (4, 4) and scores.dtype == torch.float32
        assert scores.argmax(dim=1).tolist() == [0, 1, 2, 3]
        expected = torch.tensor(
            [
                [
                    float(reference_logprobs(adapter, name, prompts[row], INSTRUCTIONS[row], text).sum())
                    for text in RESPONSES
                ]
                for row in range(4)
            ]
        )
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)

        lengths = torch.tensor([len(words(text)) + 1 for text in RESPONSES], dtype=torch.float32)
        normalised = adapter.score(prompts, INSTRUCTIONS, RESPONSES, normalise=True)
        torch.testing.assert_close(normalised, expected / lengths, rtol=1e-4, atol=1e-4)

        # Per-row candidate lists, in chunks of one prompt row at a time.
        table = [RESPONSES[row:] + RESPONSES[:row] for row in range(4)]
        chunked = adapter.score(prompts, INSTRUCTIONS, table, rows_per_pass=1)
        for row in range(4):
            torch.testing.assert_close(chunked[row], scores[row].roll(-row), rtol=1e-4, atol=1e-4)


def test_overfit_logits_end_responses_with_eos(trained):
    _, adapter, prompts = trained
    ids = adapter.generate_ids(prompts, INSTRUCTIONS)
    for row, response in enumerate(RESPONSES):
        assert ids[row, : len(words(response)) + 1].tolist() == [*words(response), EOS]
