"""Whisper's encoder: log-mel from the checkpoint's `WhisperFeatureExtractor`, conv stem, transformer.

Whisper only ever saw 30 s windows (its positional table is fixed), so by default every clip is padded
to the extractor's window, as Whisper expects, and clips longer than it are cut to it (with a warning).
With `window_seconds` set, clips are padded to that shorter window instead and the positional table is
cut to its first rows (the rows a 30 s input adds to those frames). A 5 s window is a sixth of the
frames: a sixth of the linear layers' work and a thirty-sixth of the attention's (tiny.en on 8 clips of
5 s: 10x faster, on one thread or two idle cores). The features differ from the 30 s ones, as the clip's frames no longer
attend to the padding after them (per-frame cosine similarity 0.91 on ESC-10), and serve about as well
(linear probe on ESC-10 fold 5: 0.887 vs 0.900, benchmarks/bench_whisper_window.py). The encoder
output is then trimmed to the clip's real length: `ceil(len / hop)` mel frames centred inside the clip,
halved (rounding up) by the stride-2 conv stem. Each clip is padded on its own to the same window, so
its features never depend on the rest of the batch.
"""

from __future__ import annotations

import copy
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


def window_samples(window_seconds: float, sample_rate: int, hop_length: int, longest: int) -> int:
    """The window in samples: a whole number of conv-stem frames (two mel hops each), at most `longest`."""
    samples = round(window_seconds * sample_rate)
    stem_hop = 2 * hop_length
    if abs(samples - window_seconds * sample_rate) > 1e-6 or samples % stem_hop or not 0 < samples <= longest:
        raise ConfigError(
            f"encoder.window_seconds: got {window_seconds!r}; expected a multiple of {stem_hop / sample_rate:g} s "
            f"(one encoder frame) of at most {longest / sample_rate:g} s (the checkpoint's window)"
        )
    return samples


def cut_positions(encoder: nn.Module, positions: int) -> None:
    """Keep the first `positions` rows of the encoder's positional table, for inputs of 2 * positions mel
    frames (Hugging Face's encoder checks its input length against the config, so that changes too)."""
    table = encoder.embed_positions.weight[:positions].detach().clone()
    encoder.embed_positions = nn.Embedding.from_pretrained(table, freeze=True)
    encoder.config = copy.deepcopy(encoder.config)
    encoder.config.max_source_positions = positions
    encoder.max_source_positions = positions


class WhisperEncoderAdapter(PretrainedEncoder):
    """Adapter for the encoder half of `WhisperModel` (last hidden state as features). With `window_seconds`
    the encoder's positional table is cut to that window (see the module doc)."""

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        weights_dir: Path | None = None,
        window_seconds: float | None = None,
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
        self.hop_length = int(feature_extractor.hop_length)
        self.window_samples = int(feature_extractor.n_samples)
        if window_seconds is not None:
            self.window_samples = window_samples(
                window_seconds, self.sample_rate, self.hop_length, self.window_samples
            )
            cut_positions(model, self.window_samples // (2 * self.hop_length))

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
            max_length=self.window_samples,
            truncation=True,
            return_tensors="pt",
            device=str(device),
        )["input_features"]
        hidden = self.model(mels.to(device, self.model_dtype)).last_hidden_state
        counts = self.frame_counts(lengths.to(device))
        width = int(counts.max())
        return EncoderOutput(features=hidden[:, :width], mask=mask_from_counts(counts, width))
