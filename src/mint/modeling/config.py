"""The saved model's configuration: what it takes to rebuild a MintModel on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mint.bridge.config import BridgeConfig
from mint.encoders.config import EncoderConfig
from mint.errors import ConfigError
from mint.llm.config import LLMConfig

ENCODER_FUSIONS = ("concat", "separate")


@dataclass(frozen=True)
class WindowingConfig:
    """Audio longer than `max_audio_seconds` at inference: windows of that length, each overlapping the
    next by the fraction `overlap` of a window (`mint.audio.windows`), each read by the Bridge-Net on its own. The LLM gets the
    windows' soft prompts in time order, concatenated up to `prompt_budget` tokens and, beyond it,
    averaged over runs of consecutive windows (the same number of runs as windows fit the budget). A
    question reads the `question_windows` windows most similar to it instead (`mint.inference.long_audio`).

    Each slot of the soft prompt (a window, or a run of them) gets a learned window-position embedding,
    one of `positions` (slots beyond the last share the last one), added after `llm_proj`: the LLM can
    tell the first window's queries from the second's. Stage 2 trains them on items read as several
    windows (`data.tasks.sequence`); a one-window soft prompt gets position 0.
    """

    overlap: float = 0.2
    prompt_budget: int = 256
    # One by default: the model was trained on one clip's soft prompt. On a 60-minute recording the demo's
    # stage-2 model (16 queries) answered four questions with empty text or "You are given a choice..."
    # when given 16 windows (256 tokens), and in its answer vocabulary ("yes", "no", "soft") given one.
    question_windows: int = 1
    positions: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"model.windowing.overlap: expected a fraction in [0, 1), got {self.overlap}")
        if self.prompt_budget < 1:
            raise ConfigError(f"model.windowing.prompt_budget: expected >= 1, got {self.prompt_budget}")
        if self.question_windows < 1:
            raise ConfigError(f"model.windowing.question_windows: expected >= 1, got {self.question_windows}")
        if self.positions < 1:
            raise ConfigError(f"model.windowing.positions: expected >= 1, got {self.positions}")


@dataclass(frozen=True)
class MintConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # Further frozen encoders read together with `encoder`: their features are aligned to its frames and
    # concatenated to its own (`mint.encoders.fused`); each must take the same sample rate.
    encoders: tuple[EncoderConfig, ...] = ()
    # How the Bridge-Net reads several encoders: "concat", every cross-attention layer reads the
    # concatenated features; "separate", each cross-attention layer reads one encoder's features, the
    # encoders in turn (so there must be at least as many cross-attention layers as encoders).
    encoder_fusion: str = "concat"
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    # Bridge-Net tokenizer: a local directory or hub id. None: the tokenizer of the checkpoint the
    # Bridge-Net starts from (`bridge.init_path` / the MiniLM package), which every init needs.
    tokenizer: str | None = None
    embed_dim: int = 256
    max_text_length: int = 32
    max_audio_seconds: float = 10.0
    temperature: float = 0.07
    # Stage 2: the frozen LLM the soft prompt feeds; None for a stage-1-only model.
    llm: LLMConfig | None = None
    # Instruction tokens (Bridge-Net tokenizer) placed after the queries in stage 2.
    max_instruction_length: int = 32
    # w of the retrieval re-ranking score, ATC similarity + w x ATM log-odds, as chosen on a validation
    # split by `mint.evaluation.retrieve.calibrate_rerank`; None: not calibrated (see MintModel.rerank_weight).
    rerank_weight: float | None = None
    windowing: WindowingConfig = field(default_factory=WindowingConfig)
    # Stage 2: keep a frozen copy of the Bridge-Net stage 2 starts from, and the audio LayerNorm as stage 1
    # left it, for what stage 1's heads compute (ATC embeddings, ATM): search, locate, classification by
    # ATC and the windows a question reads in a long recording then stay the stage-1 model's, however long
    # stage 2 trains the Bridge-Net for the LLM. Costs one Bridge-Net of weights; no effect without an LLM.
    stage1_retrieval: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim <= 0:
            raise ConfigError(f"model.embed_dim: expected a positive integer, got {self.embed_dim}")
        if self.max_text_length < 2:
            raise ConfigError(f"model.max_text_length: expected >= 2, got {self.max_text_length}")
        if self.max_audio_seconds <= 0:
            raise ConfigError(f"model.max_audio_seconds: expected > 0, got {self.max_audio_seconds}")
        if not 0.001 <= self.temperature <= 0.5:
            raise ConfigError(f"model.temperature: expected within [0.001, 0.5], got {self.temperature}")
        if self.max_instruction_length < 2:
            raise ConfigError(
                f"model.max_instruction_length: expected >= 2, got {self.max_instruction_length}"
            )
        if self.rerank_weight is not None and not (
            math.isfinite(self.rerank_weight) and self.rerank_weight >= 0
        ):
            raise ConfigError(
                f"model.rerank_weight: expected a finite number >= 0 or null, got {self.rerank_weight}"
            )
        if self.encoder_fusion not in ENCODER_FUSIONS:
            raise ConfigError(
                f"model.encoder_fusion: expected one of {list(ENCODER_FUSIONS)}, got {self.encoder_fusion!r}"
            )
        if self.encoder_fusion == "separate":
            parts = 1 + len(self.encoders)
            layers = math.ceil(self.bridge.num_layers / self.bridge.cross_attention_freq)
            if parts < 2 or layers < parts:
                raise ConfigError(
                    f"model.encoder_fusion: 'separate' needs model.encoders and a cross-attention layer per "
                    f"encoder; got {parts} encoder(s) and {layers} cross-attention layer(s)"
                )
        if self.llm is not None:
            self.llm.validate("model.llm")
