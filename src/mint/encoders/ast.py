"""AST (Audio Spectrogram Transformer): Kaldi-style fbank from `ASTFeatureExtractor`, ViT over patches.

The extractor computes 25 ms / 10 ms frames without centring (`1 + (len - 400) // 160` frames at
16 kHz) and pads or cuts every clip to the model's fixed `max_length` frames, so the token count is fixed:
two summary tokens ([CLS] and distillation) followed by `f x t` patch tokens in Hugging Face's order
(frequency-major: token `2 + i * t + j` is frequency row `i`, time column `j`).

Mask: the two summary tokens are always real; a patch token is real when its time span starts inside
the clip's real fbank frames (`j * time_stride < frames`), whatever its frequency row. Clips shorter
than one frame are zero-padded to one; clips longer than `max_length` frames are cut (with a warning).
Each clip is padded on its own, so its features never depend on the rest of the batch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mint.encoders.base import EncoderOutput
from mint.encoders.pretrained import PretrainedEncoder
from mint.errors import ConfigError


def default_feature_extractor(model_config: Any) -> Any:
    """AST's standard front end (AudioSet normalisation), with the model's mel count and frame length."""
    from transformers import ASTFeatureExtractor

    return ASTFeatureExtractor(num_mel_bins=model_config.num_mel_bins, max_length=model_config.max_length)


class ASTEncoder(PretrainedEncoder):
    """Adapter for `ASTModel` (last hidden state, all tokens, as features)."""

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        weights_dir: Path | None = None,
    ) -> None:
        config = model.config
        if (feature_extractor.max_length, feature_extractor.num_mel_bins) != (
            config.max_length,
            config.num_mel_bins,
        ):
            raise ConfigError(
                f"encoder.name_or_path={name_or_path!r}: the feature extractor gives "
                f"{feature_extractor.max_length} frames x {feature_extractor.num_mel_bins} mels, the model expects "
                f"{config.max_length} x {config.num_mel_bins}"
            )
        super().__init__(
            "ast", model, feature_extractor, name_or_path, dtype, config.hidden_size, weights_dir
        )
        self.frame_length = self.sample_rate * 25 // 1000
        self.frame_shift = self.sample_rate * 10 // 1000
        self.max_frames = int(config.max_length)
        self.time_stride = int(config.time_stride)
        self.freq_patches, self.time_patches = model.embeddings.get_shape(config)

    def fbank_frame_counts(self, lengths: Tensor) -> Tensor:
        padded = torch.clamp(lengths, min=self.frame_length)
        frames = 1 + torch.div(padded - self.frame_length, self.frame_shift, rounding_mode="floor")
        return torch.clamp(frames, max=self.max_frames)

    def token_mask(self, lengths: Tensor, n_summary: int) -> Tensor:
        frames = self.fbank_frame_counts(lengths)
        column_starts = torch.arange(self.time_patches, device=lengths.device) * self.time_stride
        patches = (column_starts.unsqueeze(0) < frames.unsqueeze(1)).repeat(1, self.freq_patches)
        summary = torch.ones(lengths.shape[0], n_summary, dtype=torch.bool, device=lengths.device)
        return torch.cat([summary, patches], dim=1)

    def front_end(self) -> dict:
        settings = super().front_end()
        settings["min_samples"] = self.frame_length
        return settings

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        max_samples = self.frame_length + (self.max_frames - 1) * self.frame_shift
        if int(lengths.max()) > max_samples:
            warnings.warn(
                f"AST encoder: clips longer than {max_samples / self.sample_rate:g} s are cut to that length",
                stacklevel=3,
            )
        if waveforms.shape[1] < self.frame_length:
            waveforms = nn.functional.pad(waveforms, (0, self.frame_length - waveforms.shape[1]))
        clips = self.clips_as_numpy(waveforms, torch.clamp(lengths, min=self.frame_length))
        spectrograms = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        device = self.device
        hidden = self.model(spectrograms["input_values"].to(device, self.model_dtype)).last_hidden_state
        n_summary = hidden.shape[1] - self.freq_patches * self.time_patches
        return EncoderOutput(features=hidden, mask=self.token_mask(lengths.to(device), n_summary))
