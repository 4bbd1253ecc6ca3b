"""Stage 2 end to end: build the model (fresh or from a stage-1 model) and the instruction data from an
InstructConfig, train the Bridge-Net and projection against the frozen LLM, save; and the feature cache of
a stage-2 config's audio."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mint.data.feature_cache import CacheReport, EncoderFeatureCache
from mint.data.instructions import (
    InstructionDataset,
    collate_instructions,
    instruction_audio_source,
    label_vocabulary,
    read_instruction_file,
)
from mint.data.pairs import audio_inputs
from mint.data.sources import ClipSource
from mint.encoders import AudioEncoder
from mint.modeling import MintModel
from mint.training.config import InstructConfig
from mint.training.pretrain import build_source, cache_features, fit_and_save, frontend_for, save_run_config
from mint.training.runtime import configure_torch
from mint.training.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)


def build_instruct_model(config: InstructConfig) -> MintModel:
    """The stage-2 model: a fresh Bridge-Net, or the one of `init_from`; idle stage-1 parts frozen."""
    model = MintModel.from_config(config.model)
    if config.init_from:
        model.load_stage1_weights(config.init_from)
        logger.info("Bridge-Net, heads and LayerNorm loaded from the stage-1 model %s", config.init_from)
    model.freeze_stage2_idle_parameters()
    model.bridge.gradient_checkpointing = config.trainer.gradient_checkpointing
    return model


def build_instruction_dataset(
    config: InstructConfig, encoder: AudioEncoder, train: bool = True
) -> InstructionDataset:
    """The stage-2 items of `config.data` at `encoder`'s sample rate; with `data.use_feature_cache`, the
    cached outputs of `encoder` instead of waveforms."""
    data = config.data
    frontend = frontend_for(config, encoder.sample_rate)
    source = None if data.source == "none" else build_source(data, encoder.sample_rate)
    custom = read_instruction_file(data.instructions) if data.instructions else ()
    cache = None
    if data.use_feature_cache:
        cache = EncoderFeatureCache(data.feature_cache, encoder, frontend.config)
    return InstructionDataset(
        source,
        frontend,
        seed=config.trainer.seed,
        tasks=data.tasks,
        custom=custom,
        vocabulary=label_vocabulary(source) if source is not None else (),
        train=train,
        cache=cache,
        sequence_windows=data.sequence_windows,
    )


# What `projector_only_steps` trains: the map from the Bridge-Net's queries into the LLM.
PROJECTOR_PREFIXES = ("llm_proj.", "window_position")


def hold_all_but_the_projector(steps: int) -> Callable[[int, nn.Module], None] | None:
    """A Trainer `on_gradients` hook that drops the gradients of every parameter outside
    `PROJECTOR_PREFIXES` during the first `steps` steps: AdamW leaves a parameter without a gradient as it
    is (no update, no weight decay, no moments) and clipping counts only the projector's norm."""
    if steps == 0:
        return None

    def drop_gradients(step: int, model: nn.Module) -> None:
        if step >= steps:
            return
        for name, parameter in model.named_parameters():
            # DDP names parameters under `module.`; the prefixes are the bare model's.
            if not name.removeprefix("module.").startswith(PROJECTOR_PREFIXES):
                parameter.grad = None

    return drop_gradients


def run_instruction_tuning(config: InstructConfig) -> TrainResult:
    configure_torch(config.trainer)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.trainer.seed)
    model = build_instruct_model(config)
    save_run_config(config, model, output_dir)
    dataset = build_instruction_dataset(config, model.encoder)

    def loss_fn(wrapped: nn.Module, batch: dict, generator: torch.Generator):
        out = wrapped(
            instructions=batch["instructions"],
            responses=batch["responses"],
            windows=batch.get("windows"),
            **audio_inputs(batch),
        )
        return out.loss, {}

    trainer = Trainer(
        model,
        config.trainer,
        output_dir,
        dataset,
        collate_instructions,
        loss_fn,
        trainable_state=lambda module: module.training_state_dict(),
        on_gradients=hold_all_but_the_projector(config.projector_only_steps),
    )
    return fit_and_save(trainer, config.resume)


def run_instruct_feature_caching(
    config: InstructConfig, batch_size: int = 16, progress: bool = True
) -> CacheReport:
    """Cache the encoder outputs of every clip of the source and every audio file of the instruction file
    that training reads (`data.tasks.custom` above 0), in `data.feature_cache`."""
    data = config.data

    def sources(sample_rate: int) -> list[ClipSource]:
        clips = [] if data.source == "none" else [build_source(data, sample_rate)]
        if data.instructions and data.tasks.custom > 0:
            clips.append(instruction_audio_source(read_instruction_file(data.instructions)))
        return clips

    return cache_features(config, sources, batch_size, progress)
