"""data2vec-audio, wav2vec 2.0 and HuBERT adapters against the Hugging Face pipeline they wrap."""

from __future__ import annotations

import logging

import pytest
import safetensors.torch
import torch
from encoders_checkpoints import CONV_KERNEL, CONV_STRIDE
from transformers import AutoFeatureExtractor, AutoModel

from mint.encoders import EncoderConfig, build_encoder
from mint.errors import CheckpointError, ConfigError

KINDS = ("data2vec", "wav2vec2", "hubert")
LENGTHS = [16000, 7000, 1234, 250]  # the last is shorter than the 400-sample receptive field


def _batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, length in enumerate(lengths):
        batch[row, :length] = 0.2 * torch.randn(length, generator=generator) + 0.05
    return batch, torch.tensor(lengths)


def _conv_frames(samples: int) -> int:
    """Frames of the conv stack, one layer at a time, after padding to its 400-sample receptive field."""
    length = max(samples, 400)
    for kernel, stride in zip(CONV_KERNEL, CONV_STRIDE, strict=True):
        length = (length - kernel) // stride + 1
    return length


@pytest.mark.parametrize("kind", KINDS)
def test_matches_hugging_face_pipeline_per_clip(kind: str, make_checkpoint) -> None:
    path = make_checkpoint(kind)
    encoder = build_encoder(EncoderConfig(kind=kind, name_or_path=str(path)))
    batch, lengths = _batch(LENGTHS)
    output = encoder(batch, lengths)

    expected_frames = [_conv_frames(n) for n in LENGTHS]
    assert output.mask.sum(dim=1).tolist() == expected_frames
    assert output.features.shape == (len(LENGTHS), max(expected_frames), 32)
    assert encoder.hidden_size == 32 and encoder.sample_rate == 16000

    extractor = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    for row, length in enumerate(LENGTHS):
        inputs = extractor(batch[row, :length].numpy(), sampling_rate=16000, return_tensors="pt")
        # The model needs 400 samples for one frame; the extractor's output is padded with its padding value.
        values = torch.nn.functional.pad(inputs["input_values"], (0, max(0, 400 - length)))
        with torch.no_grad():
            reference = model(values).last_hidden_state[0]
        torch.testing.assert_close(
            output.features[row, : expected_frames[row]], reference, atol=1e-4, rtol=1e-4
        )


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_real_frames(kind: str, make_checkpoint) -> None:
    encoder = build_encoder(EncoderConfig(kind=kind, name_or_path=str(make_checkpoint(kind))))
    batch, lengths = _batch([6000, 16000, 6000])
    together = encoder(batch, lengths)
    for row in (0, 2):
        alone = encoder(batch[row : row + 1, :6000], lengths[row : row + 1])
        frames = int(alone.mask.sum())
        assert int(together.mask[row].sum()) == frames
        torch.testing.assert_close(
            together.features[row, :frames], alone.features[0, :frames], atol=1e-4, rtol=1e-4
        )


def test_batching_strategy_follows_the_architecture(make_checkpoint) -> None:
    def batched(kind: str) -> bool:
        encoder = build_encoder(EncoderConfig(kind=kind, name_or_path=str(make_checkpoint(kind))))
        return encoder.identity()["front_end"]["batched_with_attention_mask"]

    assert batched("wav2vec2")  # layer-norm conv stack, one positional conv: a mask isolates the padding
    assert not batched("hubert")  # group-norm conv stack, trained without a mask
    assert not batched("data2vec")  # stacked positional convs spread padding into real frames


def test_missing_feature_extractor_falls_back_with_a_warning(make_checkpoint, tmp_path, caplog) -> None:
    path = make_checkpoint("data2vec", path=tmp_path / "ckpt")
    (path / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.WARNING, logger="mint.encoders.factory"):
        encoder = build_encoder(EncoderConfig(kind="data2vec", name_or_path=str(path)))
    assert "no feature extractor" in caplog.text
    # data2vec's conv stack uses layer norm, so the default extractor normalises and passes a mask.
    assert encoder.normalize and encoder.use_attention_mask
    assert encoder.sample_rate == 16000


def test_wrong_model_type_is_a_config_error(make_checkpoint) -> None:
    with pytest.raises(ConfigError, match=r"encoder\.kind='wav2vec2'.*'data2vec-audio'"):
        build_encoder(EncoderConfig(kind="wav2vec2", name_or_path=str(make_checkpoint("data2vec"))))


def test_checkpoint_with_missing_weights_is_rejected(make_checkpoint, tmp_path) -> None:
    path = make_checkpoint("data2vec", path=tmp_path / "ckpt")
    weights = safetensors.torch.load_file(path / "model.safetensors")
    dropped = next(key for key in weights if "encoder.layers.1." in key)
    del weights[dropped]
    safetensors.torch.save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="lacks 1 weights"):
        build_encoder(EncoderConfig(kind="data2vec", name_or_path=str(path)))


def test_unreadable_path_is_a_checkpoint_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"encoder\.name_or_path"):
        build_encoder(EncoderConfig(kind="hubert", name_or_path=str(tmp_path / "absent")))
