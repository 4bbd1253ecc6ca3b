"""Run configurations: what a YAML file under configs/ holds. Defaults live here, once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from mint.data.instructions import TaskWeights
from mint.data.pairs import check_templates
from mint.errors import ConfigError
from mint.modeling.config import MintConfig
from mint.objectives.matching import NegativeSampling
from mint.objectives.stage1 import ObjectiveWeights


@dataclass(frozen=True)
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
    # "auto": bf16 autocast where the hardware multiplies in bf16, else fp32 (`mint.hardware`).
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    gradient_checkpointing: bool = False
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 2
    seed: int = 0
    num_workers: int = 0
    max_nonfinite_steps: int = 10  # abort after this many skipped steps with a NaN/inf loss
    progress_bar: bool = True
    # torch intra-op threads; None: OMP_NUM_THREADS, else the usable cores shared among local processes.
    num_threads: int | None = None
    # Ordered kernels everywhere: two runs with the same threads and processes give the same metrics.jsonl
    # and weights, bit for bit (see mint.training.runtime; its cost is in docs/performance.md).
    deterministic: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "log_every", "save_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name}: expected >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(
                f"trainer.batch_size: {self.batch_size} is not divisible by trainer.grad_accum_steps={self.grad_accum_steps}"
            )
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"trainer.num_threads: expected >= 1 or null, got {self.num_threads}")
        for name in ("warmup_steps", "max_nonfinite_steps", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer.{name}: expected >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"trainer.lr: expected a finite number > 0, got {self.lr}")
        for name in ("weight_decay", "max_grad_norm"):  # max_grad_norm = 0 turns clipping off
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"trainer.{name}: expected a finite number >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"trainer.min_lr_ratio: expected a fraction in [0, 1], got {self.min_lr_ratio}")
        if not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"trainer.betas: expected two numbers in [0, 1), got {list(self.betas)}")


@dataclass(frozen=True)
class SyntheticDataConfig:
    """Audio generated on the fly by `mint.data.synth` (no files needed)."""

    num_clips: int = 2000
    seed: int = 0
    clip_seconds: float = 4.0
    min_events: int = 1
    max_events: int = 3


def _check_clip_data(data: DataConfig | InstructDataConfig) -> None:
    """What either stage's data section needs: the file its source names, and a cache directory when the
    cache is used."""
    if data.source == "manifest" and not data.manifest:
        raise ConfigError("data.manifest: required when data.source is 'manifest'")
    if data.source == "shards" and not data.shards:
        raise ConfigError("data.shards: required when data.source is 'shards'")
    if data.use_feature_cache and not data.feature_cache:
        raise ConfigError("data.feature_cache: required when data.use_feature_cache is true")


@dataclass(frozen=True)
class DataConfig:
    source: Literal["synthetic", "manifest", "shards"] = "synthetic"
    manifest: str | None = None  # JSONL manifest when source = manifest
    shards: str | None = None  # index.json (or its folder) of local shards from `mint data shard`
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    feature_cache: str | None = None  # directory written by `mint cache-features`
    use_feature_cache: bool = False
    # Captions for clips that have labels but none: each label in each template ("the sound of a {label}").
    # None: such clips are an error (a caption set is expected).
    caption_templates: tuple[str, ...] | None = None
    # Stage 1: the share of items (of clips whose timed `events` have captions) captioned by one event's own
    # caption ("a brief soft low-pitched tone") instead of a caption of the whole clip. 0: never.
    event_caption_share: float = 0.0
    # Stage 1: the share of items that read 2 to `sequence_windows` clips as the consecutive windows of one
    # recording, captioned by a caption of one of them (`mint.data.pairs`). 0: never.
    sequence_share: float = 0.0
    sequence_windows: int = 4

    def __post_init__(self) -> None:
        _check_clip_data(self)
        if self.caption_templates is not None:
            check_templates(self.caption_templates, "data.caption_templates")
        for name in ("event_caption_share", "sequence_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name}: expected a share within [0, 1], got {getattr(self, name)!r}")
        if self.sequence_windows < 2:
            raise ConfigError(f"data.sequence_windows: expected >= 2, got {self.sequence_windows}")


@dataclass(frozen=True)
class PretrainConfig:
    output_dir: str = "runs/pretrain"
    resume: bool = False
    model: MintConfig = field(default_factory=MintConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objectives: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    # How hard ATM's negatives are: sampling temperature and a share drawn uniformly.
    negatives: NegativeSampling = field(default_factory=NegativeSampling)


@dataclass(frozen=True)
class InstructDataConfig:
    """Stage-2 data: clips (generated or from a manifest) whose captions, labels and QA pairs become
    instruction items, plus an optional instruction file of user-defined tasks
    (`mint.data.instructions`); `tasks` weighs the mixture."""

    source: Literal["synthetic", "manifest", "shards", "none"] = "synthetic"
    manifest: str | None = None  # JSONL manifest when source = manifest
    shards: str | None = None  # index.json (or its folder) of local shards from `mint data shard`
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    instructions: str | None = None  # JSONL of {"audio", "instruction", "response"} lines
    tasks: TaskWeights = field(default_factory=TaskWeights)
    # `tasks.sequence` items read 2 to this many clips as the windows of one recording.
    sequence_windows: int = 4
    # Written by `mint cache-features --stage instruct`; keys are content digests, so the same directory
    # serves stage 1 too. Covers the instruction file's audio as well as the source's clips.
    feature_cache: str | None = None
    use_feature_cache: bool = False

    def __post_init__(self) -> None:
        if self.source == "none" and not self.instructions:
            raise ConfigError("data.instructions: required when data.source is 'none'")
        if self.sequence_windows < 2:
            raise ConfigError(f"data.sequence_windows: expected >= 2, got {self.sequence_windows}")
        _check_clip_data(self)


@dataclass(frozen=True)
class InstructConfig:
    output_dir: str = "runs/instruct"
    resume: bool = False
    # A stage-1 model directory (`MintModel.save_pretrained`) to take the Bridge-Net from; None: fresh.
    init_from: str | None = None
    model: MintConfig = field(default_factory=MintConfig)
    data: InstructDataConfig = field(default_factory=InstructDataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # The first `projector_only_steps` steps train only `llm_proj` and the window positions; the Bridge-Net
    # (and all else) stays as `init_from` left it, as LLaVA aligns its projector before tuning the rest.
    # From a stage-1 model, the LLM first learns to read queries that already tell whether a named sound is
    # in the audio, before the Bridge-Net moves for the LLM's loss.
    projector_only_steps: int = 0

    def __post_init__(self) -> None:
        if self.model.llm is None:
            raise ConfigError("model.llm: stage 2 needs an LLM (set model.llm.name_or_path)")
        if self.projector_only_steps < 0:
            raise ConfigError(f"projector_only_steps: expected >= 0, got {self.projector_only_steps}")
