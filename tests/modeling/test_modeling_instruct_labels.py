"""The stage-2 loss of a padded batch equals a straightforward recomputation, row by row: each clip encoded
alone, its instruction through the Bridge-Net unpadded, then [soft prompt][instruction][response] run
through the bare Hugging Face model with the loss on the response and end-of-sequence tokens only. So
prompt, instruction and padding (in the Bridge-Net and in the LLM, on either side) carry no loss."""

from __future__ import annotations

import pytest
import torch
from test_modeling_instruct import clips, stage2_config

from mint.modeling import MintModel

pytestmark = pytest.mark.usefixtures("single_thread")

INSTRUCTIONS = ["describe the sound", "what is making this noise? answer in a few words", "name it"]
RESPONSES = ["a loud siren wails twice", "rain", "a dog barks near a passing car"]


def reference_loss(model: MintModel, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (float64) over every response + eos token of the batch."""
    llm = model.llm
    tokenizer, network = llm.tokenizer, llm.model
    embed = network.get_input_embeddings()
    total, count = torch.zeros((), dtype=torch.float64), 0
    for row, length in enumerate(lengths.tolist()):
        audio = model.encode_audio(waveforms[row : row + 1, :length], lengths[row : row + 1])
        prompt = model.soft_prompt(audio, [INSTRUCTIONS[row]])[0]
        instruction = torch.tensor(tokenizer(INSTRUCTIONS[row])["input_ids"])
        answer = [*tokenizer(RESPONSES[row], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        if llm.is_encoder_decoder:
            encoder_input = torch.cat([prompt, embed(instruction)]).unsqueeze(0)
            decoder_input = torch.tensor([[llm.decoder_start_token_id, *answer[:-1]]])
            logits = network(inputs_embeds=encoder_input, decoder_input_ids=decoder_input).logits[0]
        else:
            sequence = torch.cat([prompt, embed(instruction), embed(torch.tensor(answer[:-1]))]).unsqueeze(0)
            first = prompt.shape[0] + len(instruction) - 1
            logits = network(inputs_embeds=sequence).logits[0, first:]
        logprobs = torch.log_softmax(logits.double(), dim=-1)[torch.arange(len(answer)), torch.tensor(answer)]
        total = total - logprobs.sum()
        count += len(answer)
    return total / count


@pytest.fixture(scope="module", params=["t5", "llama"])
def model(single_thread, request) -> MintModel:
    torch.manual_seed(0)
    return MintModel.from_config(stage2_config(request.param)).eval()


@pytest.mark.parametrize("side", ["right", "left"])
def test_loss_is_over_response_tokens_only_whatever_the_padding(model, side, monkeypatch):
    monkeypatch.setattr(model.llm, "training_padding_side", side)
    waveforms, lengths = clips(3)
    # Clips of different lengths, so the audio is padded too.
    lengths = torch.tensor([lengths[0].item(), lengths[1].item() // 2, lengths[2].item() * 3 // 4])
    with torch.no_grad():
        loss = model.instruct_loss(model.encode_audio(waveforms, lengths), INSTRUCTIONS, RESPONSES)
        expected = reference_loss(model, waveforms, lengths)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-5)
