"""data2vec-audio (the paper's encoder), wav2vec 2.0 and HuBERT: raw waveform -> conv stack -> transformer.

The three share their input handling, so one adapter serves them, given the loaded model:

* when the checkpoint's feature extractor says `do_normalize`, each clip is normalised to zero mean and
  unit variance over its real samples (the padding stays zero), as the extractor does;
* a clip's features are what the model gives for that clip alone, whatever else is in the batch (what a
  feature cache needs). When the feature extractor says `return_attention_mask` (layer-norm conv stacks,
  e.g. wav2vec2-large-lv60, hubert-large) and padding cannot leak into real frames, the batch runs at once
  with an attention mask. Otherwise clips run in groups of equal length, without padding: group-norm
  conv stacks (wav2vec2-base, hubert-base) were trained without a mask and normalise over the whole input,
  and data2vec-audio's stack of positional convolutions carries padding into the last real frames (and
  from there, through attention, into all of them) even with a mask;
* the output mask counts the frames of the conv stack (`_get_feat_extract_output_lengths`); clips shorter
  than its receptive field (25 ms for the standard stack) are zero-padded up to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mint.encoders.base import EncoderOutput, mask_from_counts
from mint.encoders.pretrained import PretrainedEncoder

_NORM_EPS = 1e-7
# Models whose positional embedding stacks several convolutions: the first one's output at padded frames
# is no longer zero, so the next one mixes it into the real frames near the end.
_PADDING_LEAKS = ("data2vec-audio",)


def normalize_clips(waveforms: Tensor, lengths: Tensor) -> Tensor:
    """Zero mean, unit variance per clip over its first `length` samples; samples past it set to zero."""
    mask = mask_from_counts(lengths, waveforms.shape[1]).to(waveforms.dtype)
    count = lengths.to(waveforms.dtype).unsqueeze(1)
    mean = (waveforms * mask).sum(dim=1, keepdim=True) / count
    variance = (((waveforms - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    return (waveforms - mean) / torch.sqrt(variance + _NORM_EPS) * mask


def min_samples_for_one_frame(conv_kernel: list[int], conv_stride: list[int]) -> int:
    """The shortest input from which the conv stack emits one frame: its receptive field."""
    needed = 1
    for kernel, stride in zip(reversed(conv_kernel), reversed(conv_stride), strict=True):
        needed = (needed - 1) * stride + kernel
    return needed


def default_feature_extractor(model_config: Any) -> Any:
    """The extractor these checkpoints ship with, reconstructed from the model config."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=getattr(model_config, "feat_extract_norm", "layer") == "layer",
    )


class Wav2VecEncoder(PretrainedEncoder):
    """Adapter for `Data2VecAudioModel`, `Wav2Vec2Model` and `HubertModel` (last hidden state as features)."""

    def __init__(
        self,
        kind: str,
        model: nn.Module,
        feature_extractor: Any,
        name_or_path: str,
        dtype: str,
        weights_dir: Path | None = None,
    ) -> None:
        config = model.config
        hidden = config.output_hidden_size if getattr(config, "add_adapter", False) else config.hidden_size
        super().__init__(kind, model, feature_extractor, name_or_path, dtype, hidden, weights_dir)
        self.normalize = bool(getattr(feature_extractor, "do_normalize", False))
        self.use_attention_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
        self.batch_with_mask = self.use_attention_mask and config.model_type not in _PADDING_LEAKS
        self.min_samples = min_samples_for_one_frame(list(config.conv_kernel), list(config.conv_stride))

    def frame_counts(self, lengths: Tensor) -> Tensor:
        padded = torch.clamp(lengths, min=self.min_samples)
        return self.model._get_feat_extract_output_lengths(padded).to(torch.long)

    def front_end(self) -> dict:
        settings = super().front_end()
        settings["batched_with_attention_mask"] = self.batch_with_mask
        settings["min_samples"] = self.min_samples
        return settings

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        device = self.device
        waveforms, lengths = waveforms.to(device), lengths.to(device)
        if self.normalize:
            waveforms = normalize_clips(waveforms, lengths)
        if waveforms.shape[1] < self.min_samples:
            waveforms = nn.functional.pad(waveforms, (0, self.min_samples - waveforms.shape[1]))
        counts = self.frame_counts(lengths)
        width = int(counts.max())
        inputs = waveforms.to(self.model_dtype)
        run_lengths = torch.clamp(lengths, min=self.min_samples)
        if self.batch_with_mask:
            attention = mask_from_counts(run_lengths, inputs.shape[1]).to(torch.long)
            hidden = self.model(inputs, attention_mask=attention).last_hidden_state[:, :width]
        else:
            hidden = inputs.new_zeros(inputs.shape[0], width, self.hidden_size)
            for length in torch.unique(run_lengths).tolist():
                rows = torch.nonzero(run_lengths == length).squeeze(1)
                group = self.model(inputs[rows, :length]).last_hidden_state
                hidden[rows, : group.shape[1]] = group
        return EncoderOutput(features=hidden, mask=mask_from_counts(counts, width))
