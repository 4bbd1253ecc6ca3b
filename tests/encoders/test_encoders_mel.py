"""The weight-free mel encoder, checked against librosa and a straightforward numpy re-computation."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import torch

from mint.encoders import EncoderConfig, MelEncoder, build_encoder
from mint.encoders.mel import log_mel_spectrogram, mel_filterbank
from mint.errors import AudioError, ConfigError

SR = 16000


def _chirp_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded batch of noisy chirps (broadband content, so every mel band is exercised)."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    batch = np.zeros((len(lengths), width), dtype=np.float32)
    for row, length in enumerate(lengths):
        t = np.arange(length) / SR
        chirp = np.sin(2 * np.pi * (200 + 3000 * t) * t)
        batch[row, :length] = 0.3 * chirp + 0.05 * rng.standard_normal(length)
    return torch.from_numpy(batch), torch.tensor(lengths)


def _numpy_positions(length: int, dim: int) -> np.ndarray:
    half = (dim + 1) // 2
    rows = []
    for position in range(length):
        angles = [position * 10000.0 ** (-i / half) for i in range(half)]
        rows.append(np.concatenate([np.sin(angles), np.cos(angles)])[:dim])
    return np.array(rows)


@pytest.mark.parametrize(("n_fft", "n_mels"), [(400, 64), (512, 40), (1024, 128)])
def test_filterbank_matches_librosa_slaney(n_fft: int, n_mels: int) -> None:
    ours = mel_filterbank(SR, n_fft, n_mels).numpy()
    reference = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-7)


def test_log_mel_matches_librosa() -> None:
    waveforms, _ = _chirp_batch([SR])
    ours = log_mel_spectrogram(waveforms, 400, 160, mel_filterbank(SR, 400, 64))[0].numpy()
    power = librosa.feature.melspectrogram(
        y=waveforms[0].numpy(), sr=SR, n_fft=400, hop_length=160, n_mels=64, center=True, pad_mode="constant"
    )
    reference = np.log10(np.maximum(power, 1e-10)).T
    assert ours.shape == reference.shape == (1 + SR // 160, 64)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_features_are_stacked_log_mel_projected_plus_positions() -> None:
    encoder = MelEncoder(n_mels=64, frames_per_token=4, hidden_size=48, seed=3)
    waveforms, lengths = _chirp_batch([7300])
    output = encoder(waveforms, lengths)

    power = librosa.feature.melspectrogram(
        y=waveforms[0].numpy(), sr=SR, n_fft=400, hop_length=160, n_mels=64, center=True, pad_mode="constant"
    )
    frames = (
        np.log10(np.maximum(power, 1e-10)).T + 4.0
    ) / 4.0  # 1 + 7300 // 160 = 46 frames: 11 full tokens + 1 half
    n_tokens = math.ceil(frames.shape[0] / 4)
    silence = (math.log10(1e-10) + 4.0) / 4.0
    padded = np.full((n_tokens * 4, 64), silence)
    padded[: frames.shape[0]] = frames
    tokens = padded.reshape(n_tokens, 4 * 64)
    expected = tokens @ encoder.projection.numpy().astype(np.float64) + _numpy_positions(n_tokens, 48)

    assert output.features.shape == (1, n_tokens, 48)
    np.testing.assert_allclose(output.features[0].numpy(), expected, atol=5e-3)


def test_mask_counts_tokens_of_frames_centred_in_each_clip() -> None:
    lengths = [16000, 9000, 161, 1]
    encoder = MelEncoder(frames_per_token=4, hidden_size=32)
    output = encoder(*_chirp_batch(lengths))
    expected = [math.ceil((1 + n // 160) / 4) for n in lengths]  # frames centred at 0, 160, ... < n + 1
    assert output.mask.sum(dim=1).tolist() == expected
    assert output.features.shape == (4, max(expected), 32)
    assert output.mask.dtype == torch.bool
    # Padded positions carry no values.
    assert torch.all(output.features[~output.mask] == 0)


def test_padding_does_not_change_a_clips_tokens() -> None:
    encoder = MelEncoder(hidden_size=32)
    batch, lengths = _chirp_batch([16000, 5000])
    together = encoder(batch, lengths)
    alone = encoder(batch[1:, :5000], lengths[1:])
    real = int(alone.mask.sum())
    torch.testing.assert_close(together.features[1, :real], alone.features[0, :real], atol=1e-5, rtol=1e-5)
    # Extra zero padding past the longest clip changes nothing either.
    wider = encoder(torch.nn.functional.pad(batch, (0, 3000)), lengths)
    torch.testing.assert_close(wider.features, together.features)


def test_projection_is_a_deterministic_function_of_the_seed() -> None:
    batch, lengths = _chirp_batch([8000])
    first, second = MelEncoder(seed=7), MelEncoder(seed=7)
    torch.testing.assert_close(
        first(batch, lengths).features, second(batch, lengths).features, rtol=0, atol=0
    )
    other = MelEncoder(seed=8)
    assert not torch.allclose(first.projection, other.projection)
    assert "projection" not in first.state_dict()
    assert first.identity() != other.identity()


def test_frozen_and_stays_in_eval_mode() -> None:
    encoder = MelEncoder()
    parent = torch.nn.Sequential(encoder, torch.nn.Linear(4, 4))
    parent.train()
    assert not encoder.training
    assert parent[1].training
    assert not any(p.requires_grad for p in encoder.parameters())
    output = encoder(*_chirp_batch([4000]))
    assert not output.features.requires_grad


def test_bfloat16_gives_float32_close_to_float32() -> None:
    batch, lengths = _chirp_batch([16000, 6000])
    full = MelEncoder(dtype="float32")(batch, lengths)
    half = MelEncoder(dtype="bfloat16")(batch, lengths)
    assert half.features.dtype == torch.float32
    assert torch.equal(full.mask, half.mask)
    scale = full.features.abs().max()
    assert (full.features - half.features).abs().max() < 0.02 * scale


def test_identity_is_json_and_names_the_front_end() -> None:
    identity = build_encoder(EncoderConfig(kind="mel", n_mels=40, hop_length=320)).identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["kind"] == "mel"
    assert identity["front_end"]["n_mels"] == 40
    assert identity["front_end"]["hop_length"] == 320
    assert identity != build_encoder(EncoderConfig(kind="mel", n_mels=40, hop_length=160)).identity()


def test_build_encoder_rejects_bad_config() -> None:
    with pytest.raises(ConfigError, match=r"encoder\.kind.*'whisper'"):
        build_encoder(EncoderConfig(kind="wavlm"))
    with pytest.raises(ConfigError, match=r"encoder\.dtype"):
        build_encoder(EncoderConfig(dtype="float16"))
    with pytest.raises(ConfigError, match=r"encoder\.frames_per_token"):
        build_encoder(EncoderConfig(frames_per_token=0))
    with pytest.raises(ConfigError, match=r"encoder\.name_or_path"):
        build_encoder(EncoderConfig(kind="whisper"))


def test_forward_rejects_malformed_batches() -> None:
    encoder = MelEncoder(hidden_size=16)
    waveforms = torch.zeros(2, 800)
    with pytest.raises(AudioError, match="lengths"):
        encoder(waveforms, torch.tensor([800, 900]))
    with pytest.raises(AudioError, match="lengths"):
        encoder(waveforms, torch.tensor([800, 0]))
    with pytest.raises(AudioError, match="lengths"):
        encoder(waveforms, torch.tensor([800]))
    with pytest.raises(AudioError, match="waveforms"):
        encoder(torch.zeros(2, 1, 800), torch.tensor([800, 800]))
