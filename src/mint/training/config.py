"""Run configurations: what a YAML file under configs/ holds. Defaults live here, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mint.errors import ConfigError
from mint.modeling.config import MintConfig
from mint.modeling.pretraining import ObjectiveWeights


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    batch_size: int = 32  # global: summed over processes and accumulation steps
    grad_accum_steps: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 2
    seed: int = 0
    num_workers: int = 0
    max_nonfinite_steps: int = 10  # abort after this many skipped steps with a NaN/inf loss
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "log_every", "save_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name}: expected >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(
                f"trainer.batch_size: {self.batch_size} is not divisible by trainer.grad_accum_steps={self.grad_accum_steps}"
            )
        if self.lr <= 0:
            raise ConfigError(f"trainer.lr: expected > 0, got {self.lr}")


@dataclass
class SyntheticDataConfig:
    """Audio generated on the fly by `mint.data.synth` (no files needed)."""

    num_clips: int = 2000
    seed: int = 0
    clip_seconds: float = 4.0
    min_events: int = 1
    max_events: int = 3


@dataclass
class DataConfig:
    source: Literal["synthetic", "manifest"] = "synthetic"
    manifest: str | None = None  # JSONL manifest when source = manifest
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    feature_cache: str | None = None  # directory written by `mint cache-features`
    use_feature_cache: bool = False

    def __post_init__(self) -> None:
        if self.source == "manifest" and not self.manifest:
            raise ConfigError("data.manifest: required when data.source is 'manifest'")
        if self.use_feature_cache and not self.feature_cache:
            raise ConfigError("data.feature_cache: required when data.use_feature_cache is true")


@dataclass
class PretrainConfig:
    output_dir: str = "runs/pretrain"
    resume: bool = False
    model: MintConfig = field(default_factory=MintConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objectives: ObjectiveWeights = field(default_factory=ObjectiveWeights)
