"""Several frozen encoders at once (`model.encoders`), as SALMONN pairs Whisper with an audio-event encoder.

Every part reads the same waveforms (so they must share a sample rate); each part's features are
resampled in time onto the first part's frames (linear interpolation between frame centres, per clip,
over its real frames only) and the parts are concatenated along the feature axis. The Bridge-Net then
cross-attends to `[B, T_first, D_1 + D_2 + ...]`: one set of layers reads all encoders, each feature
position knowing which encoder it came from by its place in the vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mint.encoders.base import AudioEncoder, EncoderOutput
from mint.errors import ConfigError


def align_frames(features: Tensor, mask: Tensor, counts: Tensor, width: int) -> Tensor:
    """`features` `[B, T, D]` (real where `mask`) resampled per clip to `counts[b]` frames, zero-padded to
    `[B, width, D]`: linear interpolation between frame centres, as `F.interpolate(align_corners=False)`."""
    out = features.new_zeros(features.shape[0], width, features.shape[2])
    for row in range(features.shape[0]):
        real = features[row, mask[row]]  # [n, D]
        target = int(counts[row])
        if target == 0 or real.shape[0] == 0:
            continue
        if real.shape[0] == target:
            out[row, :target] = real
        else:
            out[row, :target] = F.interpolate(real.T[None], size=target, mode="linear", align_corners=False)[
                0
            ].T
    return out


def fuse(outputs: Sequence[EncoderOutput]) -> EncoderOutput:
    """The parts' features on the first part's frames, concatenated; the first part's mask."""
    first = outputs[0]
    counts = first.mask.sum(dim=1)
    width = first.features.shape[1]
    aligned = [first.features]
    aligned += [align_frames(out.features, out.mask, counts, width) for out in outputs[1:]]
    return EncoderOutput(torch.cat(aligned, dim=-1), first.mask)


class FusedEncoder(AudioEncoder):
    def __init__(self, parts: Sequence[AudioEncoder]) -> None:
        if len(parts) < 2:
            raise ConfigError(f"model.encoders: a fused encoder needs two or more parts, got {len(parts)}")
        rates = [part.sample_rate for part in parts]
        if len(set(rates)) != 1:
            raise ConfigError(
                f"model.encoders: every encoder must read the same sample rate as model.encoder, got {rates} Hz"
            )
        super().__init__(rates[0], sum(part.hidden_size for part in parts))
        self.parts = nn.ModuleList(parts)
        self._freeze()

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        return fuse([part(waveforms, lengths) for part in self.parts])

    def identity(self) -> dict:
        return {"kind": "fused", "parts": [part.identity() for part in self.parts]}
