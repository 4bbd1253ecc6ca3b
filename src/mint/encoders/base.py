"""The interface every frozen audio encoder implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mint.errors import AudioError


@dataclass
class EncoderOutput:
    """`features` [B, T, D] float32 (zero where `mask` is False); `mask` [B, T] bool, True = real frame."""

    features: Tensor
    mask: Tensor


def check_batch(waveforms: Tensor, lengths: Tensor) -> None:
    """Reject a batch that does not follow the `[B, N]` + `lengths [B]` convention."""
    if not isinstance(waveforms, Tensor) or waveforms.dim() != 2 or not waveforms.is_floating_point():
        raise AudioError(
            f"waveforms: expected a float tensor of shape [batch, samples], got "
            f"{getattr(waveforms, 'dtype', type(waveforms).__name__)} {tuple(getattr(waveforms, 'shape', ()))}"
        )
    if not isinstance(lengths, Tensor) or lengths.dim() != 1 or lengths.is_floating_point():
        raise AudioError(f"lengths: expected an integer tensor of shape [batch], got {lengths!r}")
    if lengths.shape[0] != waveforms.shape[0]:
        raise AudioError(
            f"lengths: has {lengths.shape[0]} entries for a batch of {waveforms.shape[0]} waveforms"
        )
    if waveforms.shape[0] == 0:
        raise AudioError("waveforms: empty batch")
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > waveforms.shape[1]:
        raise AudioError(
            f"lengths: every length must be in [1, {waveforms.shape[1]}] (the padded width), got [{low}, {high}]"
        )


def mask_from_counts(counts: Tensor, width: int) -> Tensor:
    """[B] counts of real frames -> [B, width] bool mask with the first `count` entries True."""
    return torch.arange(width, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)


class AudioEncoder(nn.Module, ABC):
    """A frozen audio encoder: waveforms in, a padded feature sequence and its mask out.

    Frozen means no parameter requires grad, the module stays in eval mode whatever `train()` is called
    with (so `model.train()` on a parent leaves it alone) and `forward` builds no autograd graph.
    Subclasses set up their weights, call `self._freeze()` and implement `_encode` and `identity`.
    """

    def __init__(self, sample_rate: int, hidden_size: int) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.hidden_size = int(hidden_size)

    def _freeze(self) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> AudioEncoder:
        # Dropout and batch-norm statistics of a frozen encoder must never switch to training behaviour.
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def forward(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        """`waveforms` [B, N] mono at `sample_rate`, zero padded; `lengths` [B] real samples per clip."""
        check_batch(waveforms, lengths)
        with torch.no_grad():
            output = self._encode(waveforms.to(torch.float32), lengths.to(torch.long))
        mask = output.mask.to(torch.bool)
        features = output.features.to(torch.float32).masked_fill(~mask.unsqueeze(-1), 0.0)
        return EncoderOutput(features=features, mask=mask)

    @abstractmethod
    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        """Encode a validated float32 batch; called under `torch.no_grad()`."""

    @abstractmethod
    def identity(self) -> dict:
        """JSON-able description of everything that determines the features (what a feature cache keys on)."""
