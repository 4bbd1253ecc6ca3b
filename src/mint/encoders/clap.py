"""CLAP's audio tower (HTS-AT): log-mel from `ClapFeatureExtractor`, a Swin transformer over the spectrogram.

The extractor fits every clip to a fixed window (10 s at 48 kHz for the LAION checkpoints): a shorter
clip is, by its `padding` setting, repeated as many whole times as fit and then zero-padded
(`repeatpad`, the default), repeated to fill the window (`repeat`) or zero-padded (`pad`). Longer clips
would be cropped at random (`rand_trunc`) or fused from random crops (`fusion`); to keep features
deterministic, we cut them to the window's first samples ourselves (with a warning) and pass
`is_longer=False`, as the model does for clips that fit the window.

Features: the tower's last hidden state `[B, D, F, T]` (F frequency rows, T time columns in time order)
flattened time-major into `[B, T * F, D]` (token `t * F + f`). Mask: a token is real when its time
column starts inside the audio content the model was shown - the clip and its repeats, not the zero
padding. Each clip is fitted to the window on its own, so its features never depend on the batch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mint.encoders.base import EncoderOutput
from mint.encoders.pretrained import PretrainedEncoder
from mint.errors import ConfigError


def default_feature_extractor(model_config: Any) -> Any:
    """The LAION front end, with the model's mel count and the truncation mode its fusion setting needs."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=model_config.num_mel_bins,
        truncation="fusion" if model_config.enable_fusion else "rand_trunc",
    )


def content_samples(lengths: Tensor, window: int, padding: str) -> Tensor:
    """Samples of the window that hold audio (the clip or its repeats) after the extractor's padding."""
    if padding == "repeat":
        return torch.full_like(lengths, window)
    if padding == "repeatpad":
        return lengths * torch.div(window, lengths, rounding_mode="floor")
    return lengths


class ClapAudioEncoder(PretrainedEncoder):
    """Adapter for `ClapAudioModel` (the audio tower of `ClapModel`)."""

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        weights_dir: Path | None = None,
    ) -> None:
        config = model.config
        fused = feature_extractor.truncation == "fusion"
        if feature_extractor.feature_size != config.num_mel_bins or fused != bool(config.enable_fusion):
            raise ConfigError(
                f"encoder.name_or_path={name_or_path!r}: the feature extractor gives {feature_extractor.feature_size} "
                f"mels with truncation={feature_extractor.truncation!r}; the model expects {config.num_mel_bins} "
                f"mels and enable_fusion={config.enable_fusion} (truncation 'fusion' exactly when fusion is on)"
            )
        tower = model.audio_encoder
        super().__init__(
            "clap", model, feature_extractor, name_or_path, dtype, tower.num_features, weights_dir
        )
        self.window_samples = int(feature_extractor.nb_max_samples)
        self.hop_length = int(feature_extractor.hop_length)
        self.padding = str(feature_extractor.padding)
        # The extractor's centred STFT gives this many frames per window.
        self.window_frames = 1 + self.window_samples // self.hop_length
        self.spec_width = int(tower.spec_size * tower.freq_ratio)
        if self.window_frames > self.spec_width:
            raise ConfigError(
                f"encoder.name_or_path={name_or_path!r}: the feature extractor's {feature_extractor.max_length_s} s "
                f"window gives {self.window_frames} frames, more than the tower's width of {self.spec_width}"
            )

    def time_column_counts(self, lengths: Tensor, n_columns: int) -> Tensor:
        """Time columns whose first (resized) frame maps back inside the content frames."""
        content = content_samples(lengths, self.window_samples, self.padding)
        frames = torch.div(content + self.hop_length - 1, self.hop_length, rounding_mode="floor")
        frames = torch.clamp(frames, max=self.window_frames)
        # The tower resizes the window's frames to its width (bicubic, aligned corners; the identity when
        # they match): resized frame p reads source frame p * (S - 1) / (W - 1).
        numerator = frames * n_columns * (self.spec_width - 1)
        denominator = self.spec_width * max(self.window_frames - 1, 1)
        columns = torch.div(numerator + denominator - 1, denominator, rounding_mode="floor")
        return torch.clamp(columns, min=1, max=n_columns)

    def front_end(self) -> dict:
        settings = super().front_end()
        settings["long_clips"] = "first window, is_longer=False"
        return settings

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        if int(lengths.max()) > self.window_samples:
            warnings.warn(
                f"CLAP encoder: clips longer than {self.window_samples / self.sample_rate:g} s are cut to "
                "their first window",
                stacklevel=3,
            )
            lengths = torch.clamp(lengths, max=self.window_samples)
        clips = self.clips_as_numpy(waveforms, lengths)
        # The extractor draws from NumPy's global generator even for clips that fit the window (it flags a
        # random clip as "longer" under fusion); we override that flag, so the caller's RNG is restored.
        rng_state = np.random.get_state()
        try:
            mels = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        finally:
            np.random.set_state(rng_state)
        device = self.device
        is_longer = torch.zeros(len(clips), 1, dtype=torch.bool, device=device)
        output = self.model(
            input_features=mels["input_features"].to(device, self.model_dtype), is_longer=is_longer
        )
        batch, dim, n_freq, n_time = output.last_hidden_state.shape
        features = output.last_hidden_state.permute(0, 3, 2, 1).reshape(batch, n_time * n_freq, dim)
        columns = self.time_column_counts(lengths.to(device), n_time)
        real_columns = torch.arange(n_time, device=device).unsqueeze(0) < columns.unsqueeze(1)
        return EncoderOutput(features=features, mask=real_columns.repeat_interleave(n_freq, dim=1))
