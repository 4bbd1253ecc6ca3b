"""Whisper's encoder: log-mel from the checkpoint's `WhisperFeatureExtractor`, conv stem, transformer.

Whisper only ever saw 30 s windows (its positional table is fixed), so every clip is padded to the
extractor's window, as Whisper expects, and clips longer than it are cut to it (with a warning). The
encoder output is then trimmed to the clip's real length: `ceil(len / hop)` mel frames centred inside
the clip, halved (rounding up) by the stride-2 conv stem. Each clip is padded on its own to the same
window, so its features never depend on the rest of the batch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mint.encoders.base import EncoderOutput, mask_from_counts
from mint.encoders.pretrained import PretrainedEncoder
from mint.errors import ConfigError

_HOP = 160
_SAMPLE_RATE = 16000


def default_feature_extractor(model_config: Any) -> Any:
    """Whisper's standard front end, with the mel count and window length the model config implies."""
    from transformers import WhisperFeatureExtractor

    window_samples = 2 * model_config.max_source_positions * _HOP
    return WhisperFeatureExtractor(
        feature_size=model_config.num_mel_bins,
        sampling_rate=_SAMPLE_RATE,
        hop_length=_HOP,
        chunk_length=window_samples // _SAMPLE_RATE,
    )


class WhisperEncoderAdapter(PretrainedEncoder):
    """Adapter for the encoder half of `WhisperModel` (last hidden state as features)."""

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        weights_dir: Path | None = None,
    ) -> None:
        config = model.config
        expected_frames = 2 * config.max_source_positions
        if (
            feature_extractor.nb_max_frames != expected_frames
            or feature_extractor.feature_size != config.num_mel_bins
        ):
            raise ConfigError(
                f"encoder.name_or_path={name_or_path!r}: the feature extractor gives "
                f"{feature_extractor.feature_size} mels x {feature_extractor.nb_max_frames} frames, the model expects "
                f"{config.num_mel_bins} x {expected_frames}"
            )
        super().__init__(
            "whisper", model, feature_extractor, name_or_path, dtype, config.d_model, weights_dir
        )
        self.window_samples = int(feature_extractor.n_samples)
        self.hop_length = int(feature_extractor.hop_length)

    def frame_counts(self, lengths: Tensor) -> Tensor:
        mel_frames = torch.div(lengths + self.hop_length - 1, self.hop_length, rounding_mode="floor")
        return torch.div(mel_frames + 1, 2, rounding_mode="floor")

    def front_end(self) -> dict:
        settings = super().front_end()
        settings["window_samples"] = self.window_samples
        settings["trimmed_to_length"] = True
        return settings

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        if int(lengths.max()) > self.window_samples:
            warnings.warn(
                f"Whisper encoder: clips longer than {self.window_samples / self.sample_rate:g} s are cut to "
                "that length",
                stacklevel=3,
            )
            lengths = torch.clamp(lengths, max=self.window_samples)
        device = self.device
        mels = self.feature_extractor(
            self.clips_as_numpy(waveforms, lengths),
            sampling_rate=self.sample_rate,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
            device=str(device),
        )["input_features"]
        hidden = self.model(mels.to(device, self.model_dtype)).last_hidden_state
        counts = self.frame_counts(lengths.to(device))
        width = int(counts.max())
        return EncoderOutput(features=hidden[:, :width], mask=mask_from_counts(counts, width))
