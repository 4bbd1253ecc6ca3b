"""Stage 2 through MintModel: a tiny Bridge-Net trained against a frozen tiny random LLM (T5 and Llama)
overfits a handful of (audio, instruction, response) examples, then generation reproduces them, follows
the audio when it is swapped, scoring ranks them first, and a saved model gives the same outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from mint.audio.frontend import pad_batch
from mint.config import load_config
from mint.data.synth.corpus import SynthSpec, synth_example
from mint.errors import ConfigError
from mint.modeling import MintConfig, MintModel
from mint.modeling.instruct import InstructInputError
from mint.modeling.outputs import AudioFeatures, InstructOutput
from mint_testing import tiny_model_overrides

pytestmark = pytest.mark.usefixtures("single_thread")

# Within each pair of examples only the audio tells them apart; the pairs differ in instruction length.
INSTRUCTIONS = ["describe the sound"] * 2 + ["what is it?"] * 2
RESPONSES = ["a dog barks", "rain falls on a roof", "a car horn", "two bells ring"]
SWAP = [1, 0, 3, 2]
MAX_STEPS = 400
TARGET_LOSS = 0.1


def stage2_config(llm: str, extra: list[str] = ()) -> MintConfig:
    """The tiny test Bridge-Net, wide enough (64, 8 queries) to steer a random LLM, over `random:<llm>`."""
    overrides = [item.removeprefix("model.") for item in tiny_model_overrides()]
    return load_config(
        MintConfig,
        None,
        [
            *overrides,
            "bridge.hidden_size=64",
            "bridge.intermediate_size=128",
            "bridge.num_queries=8",
            f"llm.name_or_path=random:{llm}",
            *extra,
        ],
    )


def clips(count: int = 4, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` generated one-event clips of different kinds, [B, N] and lengths."""
    spec = SynthSpec(num_clips=count, seed=seed, clip_seconds=1.5, max_events=1)
    return pad_batch([synth_example(spec, index).audio for index in range(count)])


def swapped(audio: AudioFeatures, order: list[int]) -> AudioFeatures:
    return AudioFeatures(audio.features[order], audio.mask[order])


@pytest.fixture(scope="module", params=["t5", "llama"])
def trained(single_thread, request) -> tuple[str, MintModel, AudioFeatures]:
    torch.manual_seed(0)
    model = MintModel.from_config(stage2_config(request.param))
    model.freeze_stage2_idle_parameters()
    features, mask = model.encode_audio_raw(*clips())
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=5e-3, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / MAX_STEPS)
    model.train()
    for _ in range(MAX_STEPS):
        loss = model.instruct_loss(model.normalise_audio(features, mask), INSTRUCTIONS, RESPONSES)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if loss.item() < TARGET_LOSS:
            break
    assert loss.item() < 2.5 * TARGET_LOSS
    model.eval()
    with torch.no_grad():
        return request.param, model, model.normalise_audio(features, mask)


def test_generation_reproduces_the_responses_and_follows_the_audio(trained):
    _, model, audio = trained
    assert model.generate(audio, INSTRUCTIONS) == RESPONSES
    assert model.generate(swapped(audio, SWAP), INSTRUCTIONS) == [RESPONSES[i] for i in SWAP]
    assert model.generate(audio, INSTRUCTIONS, num_beams=3) == RESPONSES
    tokenizer = model.llm.tokenizer
    first_two = [
        tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:2]) for text in RESPONSES
    ]
    assert model.generate(audio, INSTRUCTIONS, max_new_tokens=2) == first_two


def test_score_ranks_each_clips_response_first_and_matches_the_loss(trained):
    _, model, audio = trained
    scores = model.score(audio, INSTRUCTIONS, RESPONSES)
    assert scores.shape == (4, 4)
    assert scores.argmax(dim=1).tolist() == [0, 1, 2, 3]
    assert model.score(swapped(audio, SWAP), INSTRUCTIONS, RESPONSES).argmax(dim=1).tolist() == SWAP
    tokenizer = model.llm.tokenizer
    for row in range(4):
        # The loss of one example is its mean token negative log-likelihood: -score / (tokens + eos).
        tokens = len(tokenizer(RESPONSES[row], add_special_tokens=False)["input_ids"]) + 1
        with torch.no_grad():
            loss = model.instruct_loss(swapped(audio, [row]), [INSTRUCTIONS[row]], [RESPONSES[row]])
        torch.testing.assert_close(-scores[row, row] / tokens, loss, rtol=1e-4, atol=1e-5)
    normalised = model.score(
        audio, INSTRUCTIONS, [RESPONSES[i:] + RESPONSES[:i] for i in range(4)], normalise=True
    )
    assert normalised.argmax(dim=1).tolist() == [0, 0, 0, 0]


def test_forward_dispatches_to_the_stage2_loss(trained):
    _, model, _ = trained
    waveforms, lengths = clips()
    with torch.no_grad():
        out = model(waveforms=waveforms, lengths=lengths, instructions=INSTRUCTIONS, responses=RESPONSES)
        expected = model.instruct_loss(model.encode_audio(waveforms, lengths), INSTRUCTIONS, RESPONSES)
    assert isinstance(out, InstructOutput)
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(InstructInputError, match="both instructions and responses"):
        model(waveforms=waveforms, lengths=lengths, instructions=INSTRUCTIONS)


def test_saved_model_loads_and_generates_the_same(trained, tmp_path):
    name, model, audio = trained
    model.save_pretrained(tmp_path / "m")
    payload = json.loads((tmp_path / "m" / "config.json").read_text())
    assert payload["config"]["llm"]["name_or_path"] == f"random:{name}"
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert "llm_proj.weight" in keys and "bridge.queries" in keys
    assert not any(key.startswith(("llm.", "encoder.")) for key in keys)
    assert not (tmp_path / "m" / "lora").exists()

    loaded = MintModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.generate(audio, INSTRUCTIONS) == RESPONSES
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.soft_prompt(audio, INSTRUCTIONS), model.soft_prompt(audio, INSTRUCTIONS)
        )


def test_lora_is_saved_on_its_own_and_restored(tmp_path):
    torch.manual_seed(1)
    model = MintModel.from_config(stage2_config("llama", ["llm.lora=true", "llm.lora_rank=4"])).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # LoRA starts as the identity; random values make it change the LLM's outputs.
        for tensor in model.llm.trainable_state().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    audio = model.encode_audio(*clips(2))
    instructions = INSTRUCTIONS[1:3]
    before = model.generate(audio, instructions, max_new_tokens=6)

    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "lora" / "adapter_model.safetensors").is_file()
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as handle:
        saved = set(handle.keys())
    assert saved == set(model.trainable_state_dict()) and not any("lora" in key for key in saved)
    loaded = MintModel.from_pretrained(tmp_path / "m").eval()
    for key, tensor in model.llm.trainable_state().items():
        torch.testing.assert_close(loaded.llm.trainable_state()[key], tensor, rtol=0, atol=0)
    assert loaded.generate(audio, instructions, max_new_tokens=6) == before

    # Without its LoRA weights the same LLM answers differently: the adapter matters and was restored.
    plain = MintModel.from_config(stage2_config("llama"))
    plain.load_state_dict(model.trainable_state_dict(), strict=False)
    assert plain.eval().generate(audio, instructions, max_new_tokens=6) != before


def test_the_instruction_steers_what_the_queries_extract():
    model = MintModel.from_config(stage2_config("t5")).eval()
    audio = model.encode_audio(*clips(1))
    both = swapped(audio, [0, 0])
    with torch.no_grad():
        queries = model.instruction_queries(
            both, ["describe the sound", "is there a siren? answer yes or no"]
        )
        alone = model.instruction_queries(audio, ["describe the sound"])
    assert queries.shape == (2, 8, 64)
    assert (queries[0] - queries[1]).abs().max() > 1e-2
    # The shorter instruction is padded in the batch; padding is masked, so its queries are as alone.
    torch.testing.assert_close(queries[0], alone[0], rtol=1e-5, atol=1e-5)
    assert model.soft_prompt(audio, ["x"]).shape == (1, 8, model.llm.hidden_size)


@pytest.mark.parametrize("lora", [False, True])
def test_no_llm_parameter_receives_a_gradient(lora):
    model = MintModel.from_config(stage2_config("llama", [f"llm.lora={str(lora).lower()}"]))
    model.freeze_stage2_idle_parameters()
    model.train()
    audio = model.encode_audio(*clips(2))
    model.instruct_loss(audio, INSTRUCTIONS[1:3], RESPONSES[1:3]).backward()
    for name, parameter in model.llm.named_parameters():
        is_lora = ".lora_" in name
        assert parameter.requires_grad == (lora and is_lora), name
        assert (parameter.grad is not None) == (lora and is_lora), name
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.llm_proj.weight.grad.abs().sum() > 0 and model.bridge.queries.grad.abs().sum() > 0
    assert model.audio_norm.weight.grad is not None
    # Every parameter still trainable in stage 2 is reached by its loss (DistributedDataParallel needs it).
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_stage1_models_and_bad_batches_are_refused():
    model = MintModel.from_config(stage2_config("t5"))
    audio = model.encode_audio(*clips(2))
    with pytest.raises(InstructInputError, match="instructions: has 1 entries for a batch of 2"):
        model.generate(audio, ["describe the sound"])
    with pytest.raises(InstructInputError, match="responses: expected a list of strings"):
        model.instruct_loss(audio, INSTRUCTIONS[:2], "a dog barks")
    overrides = [item.removeprefix("model.") for item in tiny_model_overrides()]
    stage1 = MintModel.from_config(load_config(MintConfig, None, overrides))
    assert stage1.llm is None and stage1.llm_proj is None
    with pytest.raises(ConfigError, match="this model has no LLM"):
        stage1.generate(stage1.encode_audio(*clips(2)), INSTRUCTIONS[:2])
