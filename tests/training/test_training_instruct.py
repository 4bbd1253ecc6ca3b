"""Stage 2 end to end: `mint instruct` through the shared Trainer (metrics, resolved config, checkpoints,
exact resume, a saved model), the optimizer holding no LLM weight, the warm start from a stage-1 model,
and the `mint caption / ask / classify` commands on the saved model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from mint.audio.frontend import AudioFrontend, FrontendConfig, pad_batch
from mint.cli.main import main
from mint.config import load_config
from mint.data.instructions import evaluation_instruction
from mint.data.synth.corpus import SynthSpec, synth_example
from mint.errors import CheckpointError, ConfigError
from mint.modeling import MintConfig, MintModel
from mint.training.config import InstructConfig
from mint.training.instruct import build_instruct_model, run_instruction_tuning
from mint.training.trainer import Trainer
from mint_testing import read_jsonl, tiny_instruct_overrides, tiny_model_overrides

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG = "configs/instruct/tiny.yaml"


def overrides(output_dir, steps: int = 3, llm: str = "t5", extra: list[str] = ()) -> list[str]:
    return tiny_instruct_overrides(output_dir, steps, llm, extra=extra)


def config(output_dir, steps: int = 3, llm: str = "t5", extra: list[str] = ()) -> InstructConfig:
    return load_config(InstructConfig, CONFIG, overrides(output_dir, steps, llm, extra))


def losses(output_dir) -> list[dict]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k in ("step", "loss", "lr")} for line in lines]


def wav(path, index: int) -> str:
    spec = SynthSpec(num_clips=4, clip_seconds=1.5, max_events=1)
    sf.write(str(path), synth_example(spec, index).audio, spec.sample_rate)
    return str(path)


@pytest.fixture(scope="module")
def trained(single_thread, tmp_path_factory):
    out = tmp_path_factory.mktemp("instruct") / "run"
    assert main(["instruct", CONFIG, *overrides(out)]) == 0
    return out


def test_instruct_cli_writes_metrics_config_checkpoint_and_a_model(trained):
    records = read_jsonl(trained / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all({"step", "loss", "lr"} <= set(r) and np.isfinite(r["loss"]) for r in records)
    saved = load_config(InstructConfig, trained / "config.yaml")
    assert saved.model.llm.name_or_path == "random:t5" and saved.trainer.max_steps == 3
    assert (trained / "checkpoints" / "step-000000003" / "model.safetensors").is_file()
    model = MintModel.from_pretrained(trained / "model").eval()
    waveforms = torch.from_numpy(
        synth_example(SynthSpec(num_clips=1, clip_seconds=1.5, max_events=1), 0).audio
    )[None]
    texts = model.generate(
        model.encode_audio(waveforms, torch.tensor([waveforms.shape[1]])), ["hi"], max_new_tokens=3
    )
    assert len(texts) == 1 and isinstance(texts[0], str)


def test_caption_ask_and_classify_commands(trained, tmp_path, capsys):
    model_dir = str(trained / "model")
    good = [wav(tmp_path / "a.wav", 0), wav(tmp_path / "b.wav", 1)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")

    assert main(["caption", good[0], str(bad), good[1], "--model", model_dir, "--max-new-tokens", "4"]) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == good
    assert f"skipped {bad}" in err

    assert main(["caption", str(bad), "--model", model_dir]) == 2
    assert str(bad) in capsys.readouterr().err

    assert (
        main(
            [
                "ask",
                good[0],
                "is there a siren?",
                "--model",
                model_dir,
                "--beams",
                "2",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 1

    labels = ["siren", "dog bark", "rain"]
    assert main(["classify", *good, "--labels", ",".join(labels), "--model", model_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines if not line.startswith(" ")] == good
    model = MintModel.from_pretrained(model_dir).eval()
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=model.config.max_audio_seconds))
    audio = model.encode_audio(*pad_batch([frontend.load(path) for path in good]))
    expected = model.score(audio, [evaluation_instruction("classify")] * 2, labels)
    for row in range(2):
        block = lines[row * 4 : row * 4 + 4]
        printed = [line.strip().split(None, 1) for line in block[1:]]
        scores = {label: float(value) for value, label in printed}
        assert scores == pytest.approx(
            {label: float(expected[row, i]) for i, label in enumerate(labels)}, abs=1e-3
        )
        values = [float(value) for value, _ in printed]
        assert values == sorted(values, reverse=True)
        assert block[0] == f"{good[row]}\t{labels[int(expected[row].argmax())]}"


def test_stop_and_resume_logs_the_same_losses(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    extra = ["trainer.save_every=2", "trainer.keep_last=5", "model.bridge.dropout=0.1", "model.llm.lora=true"]
    run_instruction_tuning(config(straight, steps=4, extra=extra))
    run_instruction_tuning(config(interrupted, steps=4, extra=extra))
    checkpoint = load_file(str(interrupted / "checkpoints" / "step-000000002" / "model.safetensors"))
    assert any(".lora_B." in name for name in checkpoint)
    # Simulate a run killed after its step-2 checkpoint: later state and logs are gone or stale.
    shutil.rmtree(interrupted / "checkpoints" / "step-000000004")
    shutil.rmtree(interrupted / "model")
    resumed = run_instruction_tuning(config(interrupted, steps=4, extra=[*extra, "resume=true"]))
    assert resumed.final_step == 4
    assert losses(interrupted) == losses(straight)
    assert (interrupted / "model" / "lora" / "adapter_config.json").is_file()


@pytest.mark.parametrize("lora", [False, True])
def test_optimizer_holds_no_llm_weight(tmp_path, lora):
    run = config(tmp_path, llm="llama", extra=[f"model.llm.lora={str(lora).lower()}"])
    model = build_instruct_model(run)
    trainer = Trainer(model, run.trainer, tmp_path, [], lambda x: x, lambda *a: None, lambda m: {})
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    lora_weights = {id(p) for name, p in model.llm.named_parameters() if ".lora_" in name}
    base_weights = {id(p) for name, p in model.llm.named_parameters() if ".lora_" not in name}
    assert not in_optimizer & base_weights
    assert (lora_weights <= in_optimizer) and (bool(lora_weights) == lora)
    assert id(model.llm_proj.weight) in in_optimizer and id(model.bridge.queries) in in_optimizer
    # The stage-1 heads are kept but not trained in stage 2.
    assert not in_optimizer & {id(p) for p in model.match_head.parameters()}


def test_stage2_starts_from_a_stage1_model(tmp_path):
    stage1_config = load_config(
        MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()]
    )
    stage1 = MintModel.from_config(stage1_config)
    with torch.no_grad():
        for parameter in stage1.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    stage1.save_pretrained(tmp_path / "stage1")

    fresh = build_instruct_model(config(tmp_path / "a"))
    warm = build_instruct_model(config(tmp_path / "b", extra=[f"init_from={tmp_path / 'stage1'}"]))
    saved = stage1.trainable_state_dict()
    own = warm.trainable_state_dict()
    for name, tensor in saved.items():
        torch.testing.assert_close(own[name], tensor, rtol=0, atol=0)
        assert not torch.equal(fresh.trainable_state_dict()[name], tensor)
    assert "llm_proj.weight" in own and "llm_proj.weight" not in saved

    out = tmp_path / "run"
    run_instruction_tuning(config(out, steps=1, extra=[f"init_from={tmp_path / 'stage1'}"]))
    assert (out / "model" / "model.safetensors").is_file()

    with pytest.raises(
        CheckpointError, match=r"model.bridge.num_layers is 3 here but 2 in the stage-1 model"
    ):
        build_instruct_model(
            config(tmp_path / "c", extra=[f"init_from={tmp_path / 'stage1'}", "model.bridge.num_layers=3"])
        )
    with pytest.raises(CheckpointError, match=r"model.encoder.seed is 7 here but 0"):
        build_instruct_model(
            config(tmp_path / "d", extra=[f"init_from={tmp_path / 'stage1'}", "model.encoder.seed=7"])
        )


def _stage1_outputs(model: MintModel) -> dict[str, torch.Tensor]:
    """What stage 1's heads compute for two clips and two captions: ATC embeddings and ATM logits."""
    spec = SynthSpec(num_clips=2, clip_seconds=1.5, max_events=1)
    waveforms, lengths = pad_batch([synth_example(spec, i).audio for i in range(2)])
    model.eval()
    with torch.no_grad():
        audio = model.encode_audio(waveforms, lengths)
        ids, mask = model.tokenize(["a dog barks twice", "a siren wails over pink noise"])
        return {
            "audio": model.audio_embeddings(audio),
            "text": model.text_embeddings(ids, mask),
            "match": model.match_logits(audio, ids, mask),
        }


def test_stage1_retrieval_keeps_the_stage1_models_embeddings_through_stage2(tmp_path):
    """With `model.stage1_retrieval`, ATC embeddings and ATM logits of the trained stage-2 model are exactly
    the stage-1 model's, while its own Bridge-Net has moved; without it they drift with training."""
    stage1_config = load_config(
        MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()]
    )
    torch.manual_seed(0)
    stage1 = MintModel.from_config(stage1_config)
    with torch.no_grad():
        for parameter in stage1.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.2)
    stage1.save_pretrained(tmp_path / "stage1")
    want = _stage1_outputs(stage1)
    start = [f"init_from={tmp_path / 'stage1'}", "trainer.lr=0.01"]

    for kept in (True, False):
        out = tmp_path / f"kept-{kept}"
        run_instruction_tuning(config(out, steps=3, extra=[*start, f"model.stage1_retrieval={kept}"]))
        trained = MintModel.from_pretrained(out / "model")
        assert (trained.retrieval_bridge is not None) == kept
        moved = trained.bridge.layers[0].query_ffn.dense_in.weight
        assert not torch.equal(moved, stage1.bridge.layers[0].query_ffn.dense_in.weight)
        got = _stage1_outputs(trained)
        for name, tensor in want.items():
            if kept:
                torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
            else:
                assert not torch.allclose(got[name], tensor, atol=1e-4), name


def test_projector_only_steps_hold_the_bridge_net_still_for_their_steps(tmp_path):
    """The first `projector_only_steps` steps move `llm_proj` and the window positions only; the Bridge-Net
    and the audio LayerNorm stay exactly as stage 1 left them, and the step after the last one moves them."""
    stage1_config = load_config(
        MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()]
    )
    torch.manual_seed(0)
    MintModel.from_config(stage1_config).save_pretrained(tmp_path / "stage1")
    stage1 = MintModel.from_pretrained(tmp_path / "stage1").state_dict()
    start = [f"init_from={tmp_path / 'stage1'}", "trainer.lr=0.01"]

    for held, steps in ((2, 2), (1, 2)):
        out = tmp_path / f"held-{held}-of-{steps}"
        run_instruction_tuning(config(out, steps=steps, extra=[*start, f"projector_only_steps={held}"]))
        trained = MintModel.from_pretrained(out / "model")
        run = config(out, steps=steps, extra=start)
        torch.manual_seed(run.trainer.seed)  # as the run did before it built its model
        initial = build_instruct_model(run)
        assert not torch.equal(trained.llm_proj.weight, initial.llm_proj.weight)
        assert trained.window_position.abs().sum() > 0  # zero at the start
        bridge = {
            name: tensor
            for name, tensor in trained.state_dict().items()
            if name.startswith(("bridge.", "audio_norm."))
        }
        assert bridge and bridge.keys() <= stage1.keys()
        moved = [name for name, tensor in bridge.items() if not torch.equal(tensor, stage1[name])]
        if held == steps:
            assert moved == []
        else:  # the last step trains the Bridge-Net: its trained tensors move
            assert "bridge.layers.0.query_ffn.dense_in.weight" in moved
    with pytest.raises(ConfigError, match=r"projector_only_steps: expected >= 0"):
        config(tmp_path, extra=["projector_only_steps=-1"])


def test_user_defined_tasks_train_from_an_instruction_file_alone(tmp_path):
    lines = [
        {"audio": wav(tmp_path / f"{i}.wav", i), "instruction": "Count the events.", "response": "one"}
        for i in range(4)
    ]
    (tmp_path / "custom.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "run"
    run_instruction_tuning(
        config(out, steps=2, extra=["data.source=none", f"data.instructions={tmp_path / 'custom.jsonl'}"])
    )
    assert [record["step"] for record in losses(out)] == [1, 2]


def test_bad_stage2_configs_are_clean_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"model\.llm: stage 2 needs an LLM"):
        load_config(InstructConfig, None, [])
    with pytest.raises(ConfigError, match=r"data\.instructions: required when data\.source is .none."):
        config(tmp_path, extra=["data.source=none"])
    assert main(["instruct", CONFIG, *overrides(tmp_path, extra=["model.llm.name_or_path=random:gpt7"])]) == 2
    assert "unknown random architecture" in capsys.readouterr().err


def test_mint_help_lists_the_stage2_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("instruct", "caption", "ask", "classify"))
