"""Several encoders at once: frame alignment against numpy's linear interpolation between frame centres,
the fused encoder against its parts, and a model built, saved and loaded with `model.encoders`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mint.audio import AudioFrontend, FrontendConfig
from mint.config import load_config
from mint.data.feature_cache import EncoderFeatureCache, StaleCacheError, build_feature_cache
from mint.data.sources import SyntheticSource
from mint.data.synth import SynthSpec
from mint.encoders import EncoderConfig, FusedEncoder, build_encoder
from mint.encoders.fused import align_frames
from mint.errors import ConfigError
from mint.modeling import MintConfig, MintModel
from mint.modeling.outputs import AudioFeatures
from mint_testing import tiny_model_overrides


def _centres(features: np.ndarray, target: int) -> np.ndarray:
    """`[n, D]` resampled to `[target, D]`: the target frame centres mapped onto the source frame indices
    ((i + 0.5) n / target - 0.5), clamped to the first and last frame, values interpolated linearly."""
    positions = np.clip((np.arange(target) + 0.5) * len(features) / target - 0.5, 0, len(features) - 1)
    return np.stack([np.interp(positions, np.arange(len(features)), column) for column in features.T], axis=1)


def test_frames_are_resampled_between_frame_centres_over_real_frames_only():
    features = torch.tensor([[[0.0], [1.0], [2.0], [3.0]], [[5.0], [7.0], [0.0], [0.0]]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    out = align_frames(features, mask, torch.tensor([2, 5]), width=6)
    assert out.shape == (2, 6, 1)
    np.testing.assert_allclose(out[0, :2, 0].numpy(), [0.5, 2.5])  # worked by hand: centres at 0.5 and 2.5
    np.testing.assert_allclose(out[1, :5].numpy(), _centres(np.array([[5.0], [7.0]]), 5), atol=1e-6)
    assert (out[0, 2:] == 0).all() and (out[1, 5:] == 0).all()


def _mel(hop: int, hidden: int, seed: int, rate: int = 16000) -> EncoderConfig:
    return EncoderConfig(
        kind="mel", sample_rate=rate, n_mels=16, hop_length=hop, hidden_size=hidden, seed=seed
    )


def test_the_fused_encoder_is_its_first_part_then_the_others_on_its_frames():
    first, second = build_encoder(_mel(160, 24, 0)), build_encoder(_mel(100, 8, 1))
    fused = FusedEncoder([first, second])
    assert fused.hidden_size == 32 and fused.identity()["parts"] == [first.identity(), second.identity()]
    waveforms = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([16000, 9000])
    out, a, b = fused(waveforms, lengths), first(waveforms, lengths), second(waveforms, lengths)
    assert torch.equal(out.mask, a.mask) and torch.equal(out.features[..., :24], a.features)
    assert a.features.shape[1] != b.features.shape[1]  # two frame rates
    for row in range(2):
        real = b.features[row, b.mask[row]].numpy()
        count = int(a.mask[row].sum())
        np.testing.assert_allclose(out.features[row, :count, 24:].numpy(), _centres(real, count), atol=1e-5)
    with pytest.raises(ConfigError, match=r"model\.encoders: every encoder must read the same sample rate"):
        FusedEncoder([first, build_encoder(_mel(160, 8, 1, rate=8000))])


def test_a_model_with_two_encoders_builds_saves_and_loads(tmp_path):
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    config = dataclasses.replace(config, encoders=(_mel(100, 8, 1),))
    torch.manual_seed(0)
    model = MintModel.from_config(config).eval()
    assert isinstance(model.encoder, FusedEncoder) and model.encoder.hidden_size == 32 + 8
    assert model.bridge.config.encoder_hidden_size == 40
    assert not any(name.startswith("encoder.") for name in model.trainable_state_dict())
    loaded = MintModel.from_pretrained(model.save_pretrained(tmp_path / "model")).eval()
    assert loaded.config.encoders == config.encoders
    waveforms = torch.randn(2, 24000, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([24000, 20000])
    with torch.no_grad():
        expected = model.audio_embeddings(model.encode_audio(waveforms, lengths))
        found = loaded.audio_embeddings(loaded.encode_audio(waveforms, lengths))
    torch.testing.assert_close(found, expected, rtol=0, atol=0)

    written = tmp_path / "run.yaml"
    written.write_text("encoders:\n  - {kind: mel, hop_length: 100, hidden_size: 8, n_mels: 16, seed: 1}\n")
    assert load_config(MintConfig, written).encoders == config.encoders


def test_a_fused_encoder_caches_each_part_on_its_own_and_loads_them_fused(tmp_path):
    source = SyntheticSource(SynthSpec(num_clips=4, seed=2, clip_seconds=1.5, max_events=1))
    frontend = AudioFrontend(FrontendConfig(max_seconds=1.5))
    first, second = build_encoder(_mel(160, 24, 0)), build_encoder(_mel(100, 8, 1))
    fused = FusedEncoder([first, second])
    # A single-encoder cache of the first part, then the fused one: only the second part is encoded.
    assert build_feature_cache(first, source, frontend, tmp_path, progress=False).written == 4
    report = build_feature_cache(fused, source, frontend, tmp_path, progress=False)
    assert (report.written, report.already_cached) == (4, 4)
    assert len(list((tmp_path / "encoders").iterdir())) == 2

    cache = EncoderFeatureCache(tmp_path, fused, frontend.config)
    for index in range(4):
        _, waveform = source.load(index, frontend, None)
        live = fused(torch.from_numpy(waveform)[None], torch.tensor([len(waveform)]))
        cached = cache.load(source, index, f"clip {index}")
        assert cached.dtype == torch.float16 and cached.shape == live.features[0].shape
        assert live.features.abs().max() < 8
        # Each part stored in float16 (relative rounding 2^-11 of features of magnitude < 8), then aligned:
        # interpolation mixes neighbours with weights summing to one, so the error stays under 8 x 2^-11.
        torch.testing.assert_close(cached.float(), live.features[0], rtol=0, atol=8 * 2**-11)
    other = FusedEncoder([first, build_encoder(_mel(100, 8, 9))])
    with pytest.raises(StaleCacheError, match="clip 'clip 0': the audio encoder differs"):
        EncoderFeatureCache(tmp_path, other, frontend.config).load(source, 0, "clip 0")


def _layer_outputs(model: MintModel, features: torch.Tensor) -> list[torch.Tensor]:
    """Each Bridge-Net layer's output for the queries reading `features` (all frames real)."""
    outputs: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, out: outputs.append(out)) for layer in model.bridge.layers
    ]
    mask = torch.ones(features.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        model.audio_embeddings(AudioFeatures(features, mask))
    for hook in hooks:
        hook.remove()
    return outputs


@pytest.mark.parametrize("fusion", ["concat", "separate"])
def test_separate_fusion_gives_each_cross_attention_layer_one_encoder(tmp_path, fusion):
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    config = dataclasses.replace(config, encoders=(_mel(100, 8, 1),), encoder_fusion=fusion)
    torch.manual_seed(0)
    model = MintModel.from_config(config).eval()
    widths = [layer.cross_attention.attention.key.in_features for layer in model.bridge.layers]
    features = torch.randn(2, 10, 40, generator=torch.Generator().manual_seed(2))
    changed = features.clone()
    changed[..., 32:] += 1.0  # only the second encoder's (mel, 8 wide) features differ
    before, after = _layer_outputs(model, features), _layer_outputs(model, changed)
    if fusion == "concat":
        assert model.bridge.config.audio_part_bounds == () and widths == [40, 40]
        assert not torch.equal(before[0], after[0])  # every layer reads every encoder
        return
    # Two cross-attention layers (tiny config: 2 layers, cross-attention in each): the first reads the
    # first encoder's 32 features, the second the mel's 8, so the first layer cannot see the change.
    assert model.bridge.config.audio_part_bounds == (0, 32, 40) and widths == [32, 8]
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])
    loaded = MintModel.from_pretrained(model.save_pretrained(tmp_path / "model")).eval()
    assert loaded.config.encoder_fusion == "separate"
    torch.testing.assert_close(_layer_outputs(loaded, changed)[1], after[1], rtol=0, atol=0)


def test_separate_fusion_needs_encoders_and_a_cross_attention_layer_for_each():
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    with pytest.raises(ConfigError, match=r"'separate' needs model\.encoders"):
        dataclasses.replace(config, encoder_fusion="separate")
    few = dataclasses.replace(config.bridge, cross_attention_freq=2)  # 2 layers: one with cross-attention
    with pytest.raises(ConfigError, match="1 cross-attention layer"):
        dataclasses.replace(config, bridge=few, encoders=(_mel(100, 8, 1),), encoder_fusion="separate")
    with pytest.raises(ConfigError, match=r"model\.encoder_fusion: expected one of"):
        dataclasses.replace(config, encoder_fusion="sum")
