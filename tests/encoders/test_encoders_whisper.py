"""Whisper encoder adapter: 30 s padding, trimming to the real length, agreement with Hugging Face."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import WhisperFeatureExtractor, WhisperModel

from mint.encoders import EncoderConfig, build_encoder
from mint.errors import ConfigError

SR = 16000


def _batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, length in enumerate(lengths):
        batch[row, :length] = 0.3 * torch.randn(length, generator=generator)
    return batch, torch.tensor(lengths)


@pytest.fixture(scope="module")
def encoder(make_checkpoint):
    return build_encoder(EncoderConfig(kind="whisper", name_or_path=str(make_checkpoint("whisper"))))


def test_three_seconds_give_150_frames(encoder) -> None:
    output = encoder(*_batch([3 * SR]))
    assert math.ceil(3 * SR / 160) / 2 == 150
    assert output.features.shape == (1, 150, 32)
    assert output.mask.all()
    assert encoder.hidden_size == 32 and encoder.sample_rate == SR


def test_mask_and_features_match_the_full_window_encoder(encoder, make_checkpoint) -> None:
    lengths = [3 * SR, 20001, 1999, 161]
    batch, lengths_t = _batch(lengths)
    output = encoder(batch, lengths_t)
    # ceil(len / hop) mel frames, halved (rounding up) by the stride-2 conv.
    expected = [math.ceil(math.ceil(n / 160) / 2) for n in lengths]
    assert output.mask.sum(dim=1).tolist() == expected
    assert output.features.shape[1] == max(expected)

    path = make_checkpoint("whisper")
    extractor = WhisperFeatureExtractor.from_pretrained(path)
    model = WhisperModel.from_pretrained(path).eval()
    for row, length in enumerate(lengths):
        mel = extractor(batch[row, :length].numpy(), sampling_rate=SR, return_tensors="pt")["input_features"]
        assert mel.shape[-1] == 3000  # padded to the full 30 s window
        with torch.no_grad():
            reference = model.encoder(mel).last_hidden_state[0]
        torch.testing.assert_close(
            output.features[row, : expected[row]], reference[: expected[row]], atol=1e-4, rtol=1e-4
        )


def test_padding_does_not_change_real_frames(encoder) -> None:
    batch, lengths = _batch([5 * SR, 2 * SR])
    together = encoder(batch, lengths)
    alone = encoder(batch[1:, : 2 * SR], lengths[1:])
    assert alone.features.shape[1] == 100
    torch.testing.assert_close(together.features[1, :100], alone.features[0], atol=1e-5, rtol=1e-5)


def test_clips_longer_than_the_window_are_cut_with_a_warning(encoder) -> None:
    batch, lengths = _batch([31 * SR])
    with pytest.warns(UserWarning, match="cut"):
        output = encoder(batch, lengths)
    assert output.features.shape[1] == 1500


def test_missing_feature_extractor_is_rebuilt_from_the_model_config(make_checkpoint, tmp_path) -> None:
    path = make_checkpoint("whisper", path=tmp_path / "checkpoint")
    (path / "preprocessor_config.json").unlink()
    encoder = build_encoder(EncoderConfig(kind="whisper", name_or_path=str(path)))
    assert encoder.sample_rate == SR and encoder.window_samples == 30 * SR
    assert encoder(*_batch([3 * SR])).features.shape == (1, 150, 32)


def test_a_shorter_window_pads_to_it_and_changes_the_identity(encoder, make_checkpoint) -> None:
    config = EncoderConfig(kind="whisper", name_or_path=str(make_checkpoint("whisper")), window_seconds=4.0)
    short = build_encoder(config)
    assert short.window_samples == 4 * SR
    output = short(*_batch([3 * SR, SR]))
    assert output.features.shape == (2, 150, 32)
    assert output.mask.sum(dim=1).tolist() == [150, 50]
    with pytest.warns(UserWarning, match="longer than 4 s are cut"):
        assert short(*_batch([5 * SR])).features.shape == (1, 200, 32)
    assert short.identity()["front_end"]["window_samples"] == 4 * SR
    assert short.identity() != encoder.identity()


@pytest.mark.parametrize(
    ("kind", "window", "message"),
    [
        ("whisper", 0.0, "expected a positive number of seconds"),
        ("whisper", 4.01, "expected a multiple of 0.02 s"),
        ("whisper", 31.0, "of at most 30 s"),
        ("mel", 4.0, "only the whisper encoder has a window"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(make_checkpoint, kind, window, message) -> None:
    path = str(make_checkpoint("whisper")) if kind == "whisper" else None
    with pytest.raises(ConfigError, match=rf"encoder\.window_seconds: .*{message}"):
        build_encoder(EncoderConfig(kind=kind, name_or_path=path, window_seconds=window))
