"""Stage 2 end to end: build the model (fresh or from a stage-1 model) and the instruction data from an
InstructConfig, train the Bridge-Net and projection against the frozen LLM, save."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.config import save_config
from mint.data.instructions import (
    InstructionDataset,
    collate_instructions,
    label_vocabulary,
    read_instruction_file,
)
from mint.modeling import MintModel
from mint.training.config import InstructConfig
from mint.training.plots import plot_training_curves
from mint.training.pretrain import build_source
from mint.training.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)


def build_instruct_model(config: InstructConfig) -> MintModel:
    """The stage-2 model: a fresh Bridge-Net, or the one of `init_from`; idle stage-1 parts frozen."""
    model = MintModel.from_config(config.model)
    if config.init_from:
        model.load_stage1_weights(config.init_from)
        logger.info("Bridge-Net, heads and LayerNorm loaded from the stage-1 model %s", config.init_from)
    model.freeze_stage2_idle_parameters()
    model.bridge.config.gradient_checkpointing = config.trainer.gradient_checkpointing
    return model


def build_instruction_dataset(
    config: InstructConfig, sample_rate: int, train: bool = True
) -> InstructionDataset:
    data = config.data
    frontend = AudioFrontend(
        FrontendConfig(sample_rate=sample_rate, max_seconds=config.model.max_audio_seconds)
    )
    source = None if data.source == "none" else build_source(data, sample_rate)
    custom = read_instruction_file(data.instructions) if data.instructions else ()
    return InstructionDataset(
        source,
        frontend,
        seed=config.trainer.seed,
        tasks=data.tasks,
        custom=custom,
        vocabulary=label_vocabulary(source) if source is not None else (),
        train=train,
    )


def run_instruction_tuning(config: InstructConfig) -> TrainResult:
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.trainer.seed)
    model = build_instruct_model(config)
    save_config(config, output_dir / "config.yaml")
    dataset = build_instruction_dataset(config, model.sample_rate)

    def loss_fn(wrapped: nn.Module, batch: dict, generator: torch.Generator):
        out = wrapped(
            waveforms=batch["waveforms"],
            lengths=batch["lengths"],
            instructions=batch["instructions"],
            responses=batch["responses"],
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
    )
    result = trainer.fit(resume=config.resume)
    if trainer.accelerator.is_main_process:
        model.save_pretrained(output_dir / "model")
        plot_training_curves(output_dir / "metrics.jsonl", output_dir / "loss.png")
    return result
