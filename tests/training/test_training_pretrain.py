from __future__ import annotations

import json
import shutil

import pytest
import torch

from mint.cli.main import main
from mint.config import load_config
from mint.data.feature_cache import StaleCacheError
from mint.modeling import MintModel
from mint.modeling.outputs import Stage1Batch
from mint.objectives import ContentKeys, Stage1Objective, caption_key
from mint.training.config import PretrainConfig
from mint.training.pretrain import run_feature_caching, run_pretraining
from mint.training.trainer import Trainer
from mint_testing import tiny_pretrain_overrides


def _config(output_dir, steps: int = 4, extra: list[str] = ()) -> PretrainConfig:
    return load_config(
        PretrainConfig, "configs/pretrain/tiny.yaml", [*tiny_pretrain_overrides(output_dir, steps), *extra]
    )


def _losses(output_dir) -> list[dict]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k.startswith("loss") or k == "step"} for line in lines
    ]


def test_pretrain_cli_writes_metrics_config_checkpoint_and_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "configs/pretrain/tiny.yaml", *tiny_pretrain_overrides(out, steps=3)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert {"step", "loss", "loss_atc", "loss_atm", "loss_atg", "lr"} <= set(record)
        weighted = record["loss_atc"] + record["loss_atm"] + record["loss_atg"]
        assert record["loss"] == pytest.approx(weighted, rel=1e-5)
    saved = load_config(PretrainConfig, out / "config.yaml")
    assert saved.trainer.max_steps == 3 and saved.model.bridge.hidden_size == 32
    assert (out / "checkpoints" / "step-000000003" / "model.safetensors").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    model = MintModel.from_pretrained(out / "model")
    assert model.bridge.config.num_queries == 4
    # The run's record holds the Bridge-Net as built: its vocabulary is the tokenizer's, its audio width the
    # encoder's, whatever the YAML said.
    assert saved.model.bridge == model.bridge.config
    assert saved.model.bridge.encoder_hidden_size == model.encoder.hidden_size
    assert saved.model.bridge.vocab_size == len(model.tokenizer)


def test_losses_go_down(tmp_path):
    config = _config(tmp_path, steps=40, extra=["trainer.lr=2e-3", "trainer.batch_size=8"])
    run_pretraining(config)
    records = _losses(tmp_path)
    for name in ("loss_atc", "loss_atm", "loss_atg"):
        first = sum(r[name] for r in records[:8]) / 8
        last = sum(r[name] for r in records[-8:]) / 8
        assert last < first, f"{name}: {first:.4f} -> {last:.4f}"


# With recordings read as windows too: the sequence items' draws are the same after a resume.
@pytest.mark.parametrize("sequences", [[], ["data.sequence_share=0.5"]])
def test_stop_and_resume_logs_the_same_losses(tmp_path, sequences):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    extra = ["trainer.save_every=3", "model.bridge.dropout=0.1", "trainer.keep_last=5", *sequences]
    run_pretraining(_config(straight, steps=6, extra=extra))
    run_pretraining(_config(interrupted, steps=6, extra=extra))
    # Simulate a run killed after its step-3 checkpoint: later state and logs are gone or stale.
    shutil.rmtree(interrupted / "checkpoints" / "step-000000006")
    shutil.rmtree(interrupted / "model")
    resumed = run_pretraining(_config(interrupted, steps=6, extra=[*extra, "resume=true"]))
    assert resumed.final_step == 6
    assert _losses(interrupted) == _losses(straight)


def test_feature_cache_is_used_when_valid_and_refused_when_stale(tmp_path):
    cache = tmp_path / "cache"
    extra = [f"data.feature_cache={cache}"]
    report = run_feature_caching(_config(tmp_path / "a", extra=extra), progress=False)
    assert report.written == 24 and not report.failed
    again = run_feature_caching(_config(tmp_path / "a", extra=extra), progress=False)
    assert again.written == 0 and again.already_cached == 24

    live = tmp_path / "live"
    cached = tmp_path / "cached"
    run_pretraining(_config(live, extra=["trainer.max_steps=2"]))
    run_pretraining(_config(cached, extra=[*extra, "trainer.max_steps=2", "data.use_feature_cache=true"]))
    for a, b in zip(_losses(live), _losses(cached), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=2e-2)

    with pytest.raises(StaleCacheError, match="encoder differs"):
        run_pretraining(
            _config(tmp_path / "s1", extra=[*extra, "data.use_feature_cache=true", "model.encoder.seed=7"])
        )
    with pytest.raises(StaleCacheError, match="front-end settings differ"):
        run_pretraining(
            _config(
                tmp_path / "s2", extra=[*extra, "data.use_feature_cache=true", "model.max_audio_seconds=1.25"]
            )
        )
    with pytest.raises(StaleCacheError, match="audio content changed"):
        run_pretraining(
            _config(tmp_path / "s3", extra=[*extra, "data.use_feature_cache=true", "data.synthetic.seed=5"])
        )


def test_optimizer_holds_exactly_the_trainable_parameters(tmp_path):
    config = _config(tmp_path)
    model = MintModel.from_config(config.model)
    trainer = Trainer(model, config.trainer, tmp_path, [], lambda x: x, lambda *a: None, lambda m: {})
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    frozen = {id(p) for p in model.encoder.parameters()}
    assert in_optimizer == trainable
    assert not in_optimizer & frozen
    assert all(not p.requires_grad for p in model.encoder.parameters())


def test_mint_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "pretrain" in out and "cache-features" in out and "data" in out


def test_bad_override_is_a_clean_error(tmp_path, capsys):
    code = main(["pretrain", "configs/pretrain/tiny.yaml", f"output_dir={tmp_path}", "trainer.max_stpes=3"])
    assert code == 2
    assert "trainer.max_stpes: unknown key" in capsys.readouterr().err


def test_frozen_encoder_gets_no_gradient(tmp_path):
    config = _config(tmp_path)
    model = MintModel.from_config(config.model)
    captions = ["a", "b c", "d e f", "g"]
    ids, mask = model.tokenize(captions)
    batch = Stage1Batch(
        input_ids=ids,
        attention_mask=mask,
        keys=ContentKeys.from_rows(
            [caption_key(c) for c in captions], [[caption_key(c)] for c in captions], [[i] for i in range(4)]
        ),
        generator=torch.Generator().manual_seed(0),
        waveforms=torch.randn(4, 16000) * 0.1,
        lengths=torch.full((4,), 16000),
    )
    out = model(batch, objective=Stage1Objective(config.objectives, config.negatives))
    out.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.audio_norm.weight.grad is not None and model.bridge.queries.grad is not None
