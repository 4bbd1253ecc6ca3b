"""The built-in, weight-free encoder: log-mel frames stacked into tokens and a fixed random projection.

It runs with nothing downloaded, so every pipeline can be exercised offline. The front end:

* power STFT with a periodic Hann window of `n_fft` samples, `hop_length` hop, frames centred on
  `t * hop_length` with zero padding at both ends (so a clip's frames never depend on what follows it);
* a mel filterbank on the Slaney mel scale (linear below 1 kHz, logarithmic above) with Slaney area
  normalisation, from 0 Hz to Nyquist - librosa's defaults;
* `log10(max(mel, 1e-10))`, then `(x + 4) / 4` (Whisper's affine) so that typical log-mel values lie
  in about [-1.5, 1.5], the range of the time encoding added below;
* `frames_per_token` consecutive frames concatenated into one token (the last token of a clip is filled
  with the value silence has), projected to `hidden_size` by a Gaussian matrix drawn from `seed`, plus a
  fixed sinusoidal encoding of the token index so the Bridge-Net can tell early from late.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mint.encoders.base import AudioEncoder, EncoderOutput, mask_from_counts
from mint.encoders.config import validate_mel_settings
from mint.hardware import torch_dtype

LOG_FLOOR = 1e-10
# Bump when the front end changes, so features cached from before are not reused.
FRONT_END_VERSION = 1
_SILENCE = (math.log10(LOG_FLOOR) + 4.0) / 4.0

# Slaney's mel scale: linear with 200/3 Hz per mel up to 1 kHz, then logarithmic (6.4x per 27 mels).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: Tensor) -> Tensor:
    linear = hz / _F_SP
    logarithmic = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, logarithmic, linear)


def mel_to_hz(mel: Tensor) -> Tensor:
    linear = mel * _F_SP
    logarithmic = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, logarithmic, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """[n_mels, n_fft // 2 + 1] triangular Slaney filters from 0 Hz to Nyquist, each of unit area in Hz."""
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    top_mel = hz_to_mel(torch.tensor(sample_rate / 2.0, dtype=torch.float64))
    edges_hz = mel_to_hz(torch.linspace(0.0, float(top_mel), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (weights * (2.0 / (upper - lower))).to(torch.float32)


def log_mel_spectrogram(waveforms: Tensor, n_fft: int, hop_length: int, filterbank: Tensor) -> Tensor:
    """[B, N] -> [B, 1 + N // hop_length, n_mels] of log10(max(mel power, 1e-10))."""
    window = torch.hann_window(n_fft, periodic=True, device=waveforms.device, dtype=torch.float32)
    spectrum = torch.stft(
        waveforms.to(torch.float32),
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.einsum("mf,bft->btm", filterbank.to(power.device), power)
    return torch.log10(torch.clamp(mel, min=LOG_FLOOR))


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """[length, dim]: sin of the position at geometric frequencies in the first half, cos in the second."""
    half = (dim + 1) // 2
    frequencies = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=device) / half
    )
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)[:, :dim]


class MelEncoder(AudioEncoder):
    """Log-mel tokens through a fixed projection; see the module docstring for the exact front end."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 64,
        n_fft: int = 400,
        hop_length: int = 160,
        frames_per_token: int = 4,
        hidden_size: int = 256,
        seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        validate_mel_settings(
            sample_rate=sample_rate,
            n_mels=n_mels,
            n_fft=n_fft,
            hop_length=hop_length,
            frames_per_token=frames_per_token,
            hidden_size=hidden_size,
        )
        super().__init__(sample_rate=sample_rate, hidden_size=hidden_size)
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.frames_per_token = frames_per_token
        self.seed = int(seed)
        self.dtype_name = dtype
        token_dim = n_mels * frames_per_token
        # A CPU generator gives the same matrix on every machine and device for a given seed.
        generator = torch.Generator().manual_seed(self.seed)
        projection = torch.randn(token_dim, hidden_size, generator=generator) / math.sqrt(token_dim)
        # Re-derived from the config on construction, so kept out of state dicts.
        self.register_buffer(
            "projection", projection.to(torch_dtype(dtype, "encoder.dtype")), persistent=False
        )
        self.register_buffer("filterbank", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)
        self._freeze()

    def real_frame_counts(self, lengths: Tensor) -> Tensor:
        """The frames the clip alone yields with centred framing: 1 + len // hop."""
        return 1 + torch.div(lengths, self.hop_length, rounding_mode="floor")

    def real_token_counts(self, lengths: Tensor) -> Tensor:
        """Tokens holding at least one real frame: ceil((1 + len // hop) / k)."""
        frames = self.real_frame_counts(lengths)
        return torch.div(frames + self.frames_per_token - 1, self.frames_per_token, rounding_mode="floor")

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> EncoderOutput:
        frames = (log_mel_spectrogram(waveforms, self.n_fft, self.hop_length, self.filterbank) + 4.0) / 4.0
        batch, n_frames, _ = frames.shape
        lengths = lengths.to(frames.device)
        counts = self.real_token_counts(lengths)
        n_tokens = int(counts.max())
        # A clip's last token is completed with silence rather than with frames past its end, whose
        # windows would reach into however much padding this batch happens to have.
        real_frames = mask_from_counts(self.real_frame_counts(lengths), n_frames)
        frames = frames.masked_fill(~real_frames.unsqueeze(-1), _SILENCE)
        needed = n_tokens * self.frames_per_token
        frames = frames[:, :needed]
        if frames.shape[1] < needed:
            frames = torch.nn.functional.pad(frames, (0, 0, 0, needed - frames.shape[1]), value=_SILENCE)
        tokens = frames.reshape(batch, n_tokens, self.frames_per_token * self.n_mels)
        projected = (tokens.to(self.projection.dtype) @ self.projection).to(torch.float32)
        features = projected + sinusoidal_positions(n_tokens, self.hidden_size, device=frames.device)
        return EncoderOutput(features=features, mask=mask_from_counts(counts, n_tokens))

    def identity(self) -> dict:
        return {
            "kind": "mel",
            "name_or_path": None,
            "config_hash": None,
            "weights_hash": None,
            "revision": None,
            "dtype": self.dtype_name,
            "front_end": {
                "sample_rate": self.sample_rate,
                "n_mels": self.n_mels,
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "frames_per_token": self.frames_per_token,
                "hidden_size": self.hidden_size,
                "seed": self.seed,
                "mel_scale": "slaney",
                "log": "log10 floor 1e-10, (x + 4) / 4",
                "time_encoding": "sinusoidal",
            },
            "adapter_version": FRONT_END_VERSION,
        }
