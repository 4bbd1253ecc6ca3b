"""Stage 2 from the frozen-encoder feature cache: `mint cache-features --stage instruct` caches the source's
clips and the instruction file's audio, the stage-2 loss on cached features is the loss on the fp16-rounded
encoder output, a cached run trains and saves a model, and a stale entry or a bad config is a clean error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.config import load_config
from mint.data.feature_cache import StaleCacheError
from mint.data.instructions import collate_instructions
from mint.data.synth.corpus import SynthSpec, synth_example
from mint.errors import ConfigError, DataError
from mint.modeling import MintModel
from mint.training.config import InstructConfig, PretrainConfig
from mint.training.instruct import (
    build_instruct_model,
    build_instruction_dataset,
    run_instruct_feature_caching,
    run_instruction_tuning,
)
from mint.training.pretrain import run_feature_caching
from mint_testing import jitter_trainable_, read_jsonl, tiny_instruct_overrides, tiny_pretrain_overrides

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG = "configs/instruct/tiny.yaml"
NUM_CLIPS = 6
# Custom-task audio shorter than the source's 1.5 s clips, so that a batch holds padded feature rows.
CUSTOM_SECONDS = (0.9, 1.2)


def _overrides(output_dir, steps: int = 2, extra: list[str] = ()) -> list[str]:
    return tiny_instruct_overrides(output_dir, steps, num_clips=NUM_CLIPS, extra=extra)


def _config(output_dir, steps: int = 2, extra: list[str] = ()) -> InstructConfig:
    return load_config(InstructConfig, CONFIG, _overrides(output_dir, steps, extra))


def _losses(output_dir) -> list[float]:
    return [record["loss"] for record in read_jsonl(output_dir / "metrics.jsonl")]


@pytest.fixture
def instructions(tmp_path) -> str:
    """An instruction file of two lines whose audio files are not clips of the source."""
    spec = SynthSpec(num_clips=4, seed=3, clip_seconds=1.5, max_events=1)
    lines = []
    for line, seconds in enumerate(CUSTOM_SECONDS):
        path = tmp_path / f"custom{line}.wav"
        sf.write(str(path), synth_example(spec, line).audio[: int(16000 * seconds)], spec.sample_rate)
        lines.append({"audio": path.name, "instruction": "How many events?", "response": f"{line + 1}"})
    (tmp_path / "custom.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(tmp_path / "custom.jsonl")


@pytest.fixture
def cached(tmp_path, instructions) -> list[str]:
    """Overrides of a stage-2 config with an instruction file and a feature cache built for it."""
    extra = [f"data.instructions={instructions}", f"data.feature_cache={tmp_path / 'cache'}"]
    report = run_instruct_feature_caching(_config(tmp_path / "unused", extra=extra), progress=False)
    assert report.written == NUM_CLIPS + len(CUSTOM_SECONDS) and not report.failed
    return extra


def _jittered_model(config: InstructConfig) -> MintModel:
    # Fresh weights give nearly the same loss for any audio; jittered ones make the loss depend on it.
    return jitter_trainable_(build_instruct_model(config), 0.3).eval()


def test_loss_on_cached_features_is_the_loss_on_the_fp16_encoder_output(tmp_path, cached):
    config = _config(tmp_path / "a", extra=[*cached, "data.use_feature_cache=true"])
    model = _jittered_model(config)
    from_cache = build_instruction_dataset(config, model.encoder, train=False)
    live_config = _config(tmp_path / "a", extra=cached)
    from_audio = build_instruction_dataset(live_config, model.encoder, train=False)
    # Evaluation items: every clip then every instruction line, with fixed tasks and the cache's crop.
    assert len(from_cache) == len(from_audio) == NUM_CLIPS + len(CUSTOM_SECONDS)
    keys = [(0, index) for index in range(len(from_cache))]
    cache_batch = collate_instructions([from_cache[key] for key in keys])
    audio_batch = collate_instructions([from_audio[key] for key in keys])
    assert cache_batch["instructions"] == audio_batch["instructions"]
    assert cache_batch["responses"] == audio_batch["responses"]
    assert cache_batch["tasks"][-2:] == ["custom", "custom"] and "waveforms" not in cache_batch

    # Reference: the encoder run on the waveforms here, rounded to fp16 as the cache stores it.
    raw, mask = model.encode_audio_raw(audio_batch["waveforms"], audio_batch["lengths"])
    assert not mask.all()  # the short instruction-file clips are padded
    assert torch.equal(cache_batch["feature_mask"], mask)
    rounded = torch.where(mask[..., None], raw.half().float(), torch.zeros(()))
    # Two fp16 roundings of float32 values that differ in the last bits differ by at most one fp16 step.
    torch.testing.assert_close(cache_batch["features"], rounded, rtol=2**-10, atol=1e-6)

    texts = {"instructions": cache_batch["instructions"], "responses": cache_batch["responses"]}
    with torch.no_grad():
        on_cache = model(features=cache_batch["features"], feature_mask=mask, **texts).loss
        on_rounded = model.instruct_loss(model.normalise_audio(rounded, mask), **texts)
        on_audio = model(waveforms=audio_batch["waveforms"], lengths=audio_batch["lengths"], **texts).loss
        other_audio = torch.roll(cache_batch["features"], 1, dims=0)
        on_other = model(features=other_audio, feature_mask=torch.roll(mask, 1, dims=0), **texts).loss
    torch.testing.assert_close(on_cache, on_rounded, rtol=1e-5, atol=1e-5)
    # fp16 keeps 11 significant bits, a relative change of at most 2^-11 per feature: it moves the loss
    # by orders of magnitude less than giving each row another clip's audio does (which the second
    # check makes sure of, so that the first would catch features being ignored or misplaced).
    assert abs(on_cache.item() - on_audio.item()) < 1e-3
    assert abs(on_other.item() - on_cache.item()) > 0.1


def test_cache_features_cli_then_a_cached_stage2_run_trains_and_saves_a_model(tmp_path, instructions):
    cache = tmp_path / "cache"
    extra = [f"data.instructions={instructions}", f"data.feature_cache={cache}"]
    overrides = _overrides(tmp_path / "run", steps=3, extra=[*extra, "data.use_feature_cache=true"])
    assert main(["cache-features", CONFIG, *overrides, "--stage", "instruct"]) == 0
    assert len(list(cache.rglob("*.safetensors"))) == NUM_CLIPS + len(CUSTOM_SECONDS)
    assert main(["instruct", CONFIG, *overrides]) == 0

    cached_losses = _losses(tmp_path / "run")
    assert len(cached_losses) == 3 and all(np.isfinite(cached_losses))
    assert (tmp_path / "run" / "checkpoints" / "step-000000003" / "model.safetensors").is_file()
    model = MintModel.from_pretrained(tmp_path / "run" / "model")
    assert model.llm is not None
    # Clips no longer than max_audio_seconds are not cropped, so a live run draws the same items.
    run_instruction_tuning(_config(tmp_path / "live", steps=3, extra=extra))
    assert cached_losses == pytest.approx(_losses(tmp_path / "live"), abs=1e-3)


def test_a_stage1_cache_serves_stage2(tmp_path):
    cache = tmp_path / "cache"
    stage1 = load_config(
        PretrainConfig,
        "configs/pretrain/tiny.yaml",
        [
            *tiny_pretrain_overrides(tmp_path / "stage1"),
            f"data.synthetic.num_clips={NUM_CLIPS}",
            f"data.feature_cache={cache}",
        ],
    )
    assert run_feature_caching(stage1, progress=False).written == NUM_CLIPS
    config = _config(tmp_path / "run", extra=[f"data.feature_cache={cache}", "data.use_feature_cache=true"])
    again = run_instruct_feature_caching(config, progress=False)
    assert again.written == 0 and again.already_cached == NUM_CLIPS
    run_instruction_tuning(config)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_stale_entries_raise_naming_the_clip(tmp_path, cached, instructions):
    cache = cached[1]  # without the instruction file: every item is a source clip
    config = _config(tmp_path / "s1", extra=[cache, "data.use_feature_cache=true", "model.encoder.seed=7"])
    with pytest.raises(StaleCacheError, match=r"clip 'synth-0-\d{7}'.*encoder differs"):
        run_instruction_tuning(config)

    config = _config(tmp_path / "s2", extra=[*cached, "data.use_feature_cache=true"])
    model = build_instruct_model(config)
    dataset = build_instruction_dataset(config, model.encoder, train=False)
    changed = tmp_path / "custom1.wav"
    audio, rate = sf.read(str(changed), dtype="float32")
    sf.write(str(changed), audio * 0.5, rate)
    assert dataset[(0, NUM_CLIPS)]["task"] == "custom"  # the unchanged file is still found
    with pytest.raises(StaleCacheError, match=rf"clip '{changed}'.*audio content changed"):
        dataset[(0, NUM_CLIPS + 1)]
    changed.unlink()
    with pytest.raises(DataError, match=rf"clip '{changed}': its audio cannot be read"):
        dataset[(0, NUM_CLIPS + 1)]


def test_bad_cache_configs_and_mixed_batches_are_clean_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"data\.feature_cache: required when data\.use_feature_cache"):
        _config(tmp_path, extra=["data.use_feature_cache=true"])
    with pytest.raises(ConfigError, match=r"data\.feature_cache: set the directory"):
        run_instruct_feature_caching(_config(tmp_path), progress=False)
    assert main(["cache-features", CONFIG, *_overrides(tmp_path), "--stage", "instruct"]) == 2
    assert "data.feature_cache" in capsys.readouterr().err
    # A stage-2 config is not a stage-1 one: without --stage instruct its stage-2 keys are unknown.
    assert main(["cache-features", CONFIG, *_overrides(tmp_path, extra=["data.feature_cache=c"])]) == 2
    assert "unknown key" in capsys.readouterr().err

    item = {"instruction": "a", "response": "b", "task": "caption"}
    mixed = [{**item, "features": torch.zeros(3, 32)}, {**item, "waveform": np.zeros(160, np.float32)}]
    with pytest.raises(DataError, match="1 of 2 items carry cached features"):
        collate_instructions(mixed)
