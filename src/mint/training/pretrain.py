"""Stage 1 end to end: build the model and data from a PretrainConfig, train, save."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.config import save_config
from mint.data.feature_cache import CacheReport, EncoderFeatureCache, build_feature_cache
from mint.data.pairs import CaptionPairDataset, audio_inputs, collate_pairs, pair_keys
from mint.data.shards import ShardSource
from mint.data.sources import ClipSource, ManifestSource, SyntheticSource
from mint.data.synth.corpus import SynthSpec
from mint.distributed import world_info
from mint.encoders import build_model_encoder
from mint.errors import ConfigError
from mint.modeling import MintModel
from mint.modeling.outputs import Stage1Batch
from mint.objectives.stage1 import Stage1Objective
from mint.training.config import DataConfig, InstructConfig, PretrainConfig
from mint.training.plots import plot_training_curves
from mint.training.runtime import configure_torch
from mint.training.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)


def build_source(data: DataConfig, sample_rate: int) -> ClipSource:
    if data.source == "manifest":
        return ManifestSource.from_file(data.manifest)
    if data.source == "shards":
        return ShardSource.from_index(data.shards)
    synthetic = data.synthetic
    spec = SynthSpec(
        num_clips=synthetic.num_clips,
        seed=synthetic.seed,
        sample_rate=sample_rate,
        clip_seconds=synthetic.clip_seconds,
        min_events=synthetic.min_events,
        max_events=synthetic.max_events,
    )
    return SyntheticSource(spec)


def frontend_for(config: PretrainConfig | InstructConfig, sample_rate: int) -> AudioFrontend:
    """The front end of either stage's run config at the encoder's sample rate."""
    return AudioFrontend(FrontendConfig(sample_rate=sample_rate, max_seconds=config.model.max_audio_seconds))


def save_run_config(config: PretrainConfig | InstructConfig, model: MintModel, output_dir: Path) -> None:
    """Write the run's config.yaml with the model as built (the Bridge-Net's sizes from its checkpoint and
    tokenizer), which the YAML alone may not say."""
    save_config(dataclasses.replace(config, model=model.config), output_dir / "config.yaml")


def pretraining_trainer(config: PretrainConfig) -> Trainer:
    """A stage-1 run ready to fit: the model, its data and its loss (the trainer holds all three)."""
    configure_torch(config.trainer)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.trainer.seed)
    model = MintModel.from_config(config.model)
    model.bridge.gradient_checkpointing = config.trainer.gradient_checkpointing
    save_run_config(config, model, output_dir)

    frontend = frontend_for(config, model.sample_rate)
    source = build_source(config.data, model.sample_rate)
    cache = None
    if config.data.use_feature_cache:
        cache = EncoderFeatureCache(config.data.feature_cache, model.encoder, frontend.config)
    dataset = CaptionPairDataset(
        source,
        frontend,
        seed=config.trainer.seed,
        train=True,
        cache=cache,
        caption_templates=config.data.caption_templates,
        event_share=config.data.event_caption_share,
        sequence_share=config.data.sequence_share,
        sequence_windows=config.data.sequence_windows,
    )

    def loss_fn(wrapped: nn.Module, batch: dict, generator: torch.Generator):
        input_ids, attention_mask = model.tokenize(batch["captions"], device=batch["caption_keys"].device)
        step = Stage1Batch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            keys=pair_keys(batch),
            generator=generator,
            windows=batch.get("windows"),
            **audio_inputs(batch),
        )
        # Rank and world size read here, at every step: the objective gathers over the group they describe.
        rank, world_size = world_info()
        objective = Stage1Objective(config.objectives, config.negatives, rank, world_size)
        out = wrapped(step, objective=objective)
        return out.loss, {
            "loss_atc": out.loss_atc,
            "loss_atm": out.loss_atm,
            "loss_atg": out.loss_atg,
            "temperature": out.temperature,
        }

    return Trainer(
        model,
        config.trainer,
        output_dir,
        dataset,
        collate_pairs,
        loss_fn,
        trainable_state=lambda module: module.trainable_state_dict(),
    )


def fit_and_save(trainer: Trainer, resume: bool) -> TrainResult:
    """Train (either stage), then save the model and its loss curves from the main process."""
    result = trainer.fit(resume=resume)
    if trainer.accelerator.is_main_process:
        trainer.model.save_pretrained(trainer.output_dir / "model")
        plot_training_curves(trainer.output_dir / "metrics.jsonl", trainer.output_dir / "loss.png")
    return result


def run_pretraining(config: PretrainConfig) -> TrainResult:
    return fit_and_save(pretraining_trainer(config), config.resume)


def cache_features(
    config: PretrainConfig | InstructConfig,
    sources: Callable[[int], list[ClipSource]],
    batch_size: int = 16,
    progress: bool = True,
) -> CacheReport:
    """Cache the encoder outputs of every clip of `sources(sample_rate)` in `config.data.feature_cache`
    (either stage: entries are keyed by content, encoder and front end, not by stage)."""
    if not config.data.feature_cache:
        raise ConfigError("data.feature_cache: set the directory to write the cache to")
    encoder = build_model_encoder(config.model.encoder, config.model.encoders)
    frontend = frontend_for(config, encoder.sample_rate)
    total = CacheReport()
    for source in sources(encoder.sample_rate):
        total.add(
            build_feature_cache(
                encoder, source, frontend, config.data.feature_cache, batch_size, progress=progress
            )
        )
    return total


def run_feature_caching(config: PretrainConfig, batch_size: int = 16, progress: bool = True) -> CacheReport:
    return cache_features(
        config, lambda sample_rate: [build_source(config.data, sample_rate)], batch_size, progress
    )
