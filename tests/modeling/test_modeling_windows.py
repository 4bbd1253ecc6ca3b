"""Stage-2 items read as several windows (`windows`): batched items get their loss alone, each window its
position's embedding, a tiny model learns answers that depend on the windows' order, and a model saved
before window positions existed still loads."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_modeling_instruct import clips, stage2_config

from mint.modeling import MintModel
from mint.modeling.instruct import InstructInputError, windowed_prompt
from mint.modeling.outputs import AudioFeatures
from mint.storage import file_digests

pytestmark = pytest.mark.usefixtures("single_thread")


def _rows(audio: AudioFeatures, rows: list[int]) -> AudioFeatures:
    return AudioFeatures(audio.features[rows], audio.mask[rows])


@pytest.fixture(scope="module")
def model_and_audio(single_thread) -> tuple[MintModel, AudioFeatures]:
    torch.manual_seed(0)
    model = MintModel.from_config(stage2_config("llama", ["windowing.positions=2"])).eval()
    with torch.no_grad():
        model.window_position.normal_(0, 0.5)
    return model, model.encode_audio(*clips(6, seed=5))


def test_batched_windowed_items_each_get_their_loss_alone(model_and_audio):
    model, audio = model_and_audio
    windows = [3, 1, 2]
    rows = [[0, 1, 2], [3], [4, 5]]
    instructions = ["describe the sound", "what is it?", "describe the sound"]
    responses = ["a dog barks", "rain falls on a roof", "two bells ring"]
    tokenizer = model.llm.tokenizer
    tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 for text in responses]
    with torch.no_grad():
        batch = model.instruct_loss(audio, instructions, responses, windows)
        alone = [
            model.instruct_loss(_rows(audio, part), [instruction], [response], [len(part)])
            for part, instruction, response in zip(rows, instructions, responses, strict=True)
        ]
        # One window per item is the plain path.
        plain = model.instruct_loss(_rows(audio, [3]), [instructions[1]], [responses[1]])
    expected = sum(loss * count for loss, count in zip(alone, tokens, strict=True)) / sum(tokens)
    torch.testing.assert_close(batch, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain, alone[1], rtol=0, atol=0)


def test_each_window_gets_its_places_position_and_the_last_is_shared_beyond(model_and_audio):
    model, audio = model_and_audio
    num_queries = model.config.bridge.num_queries
    with torch.no_grad():
        prompt, mask = windowed_prompt(model, audio, ["describe the sound"] * 2, [3, 3])
        positions = model.window_position.clone()
        model.window_position.zero_()
        try:
            without, _ = windowed_prompt(model, audio, ["describe the sound"] * 2, [3, 3])
        finally:
            model.window_position.copy_(positions)
    assert mask is None and prompt.shape[:2] == (2, 3 * num_queries)
    # Two learned positions: windows 0 and 1 get their own, window 2 shares position 1.
    added = (prompt - without).view(2, 3, num_queries, -1)
    for window, position in enumerate([0, 1, 1]):
        torch.testing.assert_close(added[:, window], positions[position].expand_as(added[:, window]))


def test_windows_must_add_up_to_the_audio(model_and_audio):
    model, audio = model_and_audio
    with pytest.raises(InstructInputError, match="add up to 5 windows; the audio has 6"):
        model.instruct_loss(audio, ["a", "b"], ["x", "y"], [2, 3])
    with pytest.raises(InstructInputError, match="windows: expected 2 counts"):
        model.instruct_loss(audio, ["a", "b"], ["x", "y"], [6])


def test_a_tiny_model_learns_answers_that_depend_on_the_order_of_its_windows():
    torch.manual_seed(0)
    model = MintModel.from_config(stage2_config("llama"))
    model.freeze_stage2_idle_parameters()
    features, mask = model.encode_audio_raw(*clips(4, seed=3))
    # The same two clips in either order, twice over: only the order tells each pair's answers apart.
    order = [0, 1, 1, 0, 2, 3, 3, 2]
    windows = [2, 2, 2, 2]
    instructions = ["what is it?"] * 4
    responses = ["a dog barks", "rain falls on a roof", "a car horn", "two bells ring"]
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=5e-3)
    model.train()
    for _ in range(400):
        loss = model.instruct_loss(
            model.normalise_audio(features[order], mask[order]), instructions, responses, windows
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    model.eval()
    audio = model.normalise_audio(features[order], mask[order])
    assert model.generate(audio, instructions, windows) == responses


def test_a_model_saved_before_window_positions_loads_with_none(model_and_audio, tmp_path):
    model, audio = model_and_audio
    directory = model.save_pretrained(tmp_path / "m")
    weights = directory / "model.safetensors"
    state = load_file(str(weights))
    del state["window_position"]
    save_file(state, str(weights))
    file_digests(directory, write=True)
    loaded = MintModel.from_pretrained(directory).eval()
    assert torch.equal(loaded.window_position, torch.zeros_like(model.window_position))
    with torch.no_grad():
        positions = model.window_position.clone()
        model.window_position.zero_()
        try:
            expected = model.soft_prompt(audio, ["describe the sound"] * 6)
        finally:
            model.window_position.copy_(positions)
        torch.testing.assert_close(loaded.soft_prompt(audio, ["describe the sound"] * 6), expected)
