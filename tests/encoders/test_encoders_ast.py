"""AST adapter: fixed token layout, patch-token mask, agreement with Hugging Face."""

from __future__ import annotations

import pytest
import torch
from encoders_checkpoints import AST_MAX_FRAMES
from transformers import ASTFeatureExtractor, ASTModel

from mint.encoders import EncoderConfig, build_encoder

SR = 16000
# The tiny model: 32 mels, patch 16, strides 10 -> 2 frequency rows; 200 frames -> 19 time columns.
FREQ_ROWS, TIME_COLUMNS, TIME_STRIDE = (32 - 16) // 10 + 1, (AST_MAX_FRAMES - 16) // 10 + 1, 10


def _batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, length in enumerate(lengths):
        batch[row, :length] = 0.3 * torch.randn(length, generator=generator)
    return batch, torch.tensor(lengths)


@pytest.fixture(scope="module")
def encoder(make_checkpoint):
    return build_encoder(EncoderConfig(kind="ast", name_or_path=str(make_checkpoint("ast"))))


def _expected_mask(length: int) -> list[bool]:
    """[CLS], [DIST], then rows of time columns; a column is real when it starts in a real fbank frame."""
    frames = 1 + (max(length, 400) - 400) // 160  # 25 ms windows every 10 ms, no centring
    columns = [column * TIME_STRIDE < frames for column in range(TIME_COLUMNS)]
    return [True, True] + columns * FREQ_ROWS


def test_tokens_mask_and_features(encoder, make_checkpoint) -> None:
    lengths = [2 * SR, SR, 1840, 300]  # 1840 samples: exactly 10 frames, so column 1 (frame 10) is not real
    batch, lengths_t = _batch(lengths)
    output = encoder(batch, lengths_t)
    assert output.features.shape == (4, 2 + FREQ_ROWS * TIME_COLUMNS, 32)
    assert encoder.hidden_size == 32 and encoder.sample_rate == SR
    assert output.mask.tolist() == [_expected_mask(n) for n in lengths]
    # Hand-worked: 1 s -> 98 frames -> columns 0..9 real -> 2 + 2 * 10 tokens.
    assert int(output.mask[1].sum()) == 22
    assert int(output.mask[2].sum()) == 2 + 2

    path = make_checkpoint("ast")
    extractor = ASTFeatureExtractor.from_pretrained(path)
    model = ASTModel.from_pretrained(path).eval()
    for row, length in enumerate(lengths[:3]):
        values = extractor(batch[row, :length].numpy(), sampling_rate=SR, return_tensors="pt")["input_values"]
        with torch.no_grad():
            reference = model(values).last_hidden_state[0]
        real = output.mask[row]
        torch.testing.assert_close(output.features[row][real], reference[real], atol=1e-4, rtol=1e-4)


def test_padding_does_not_change_the_clip(encoder) -> None:
    batch, lengths = _batch([2 * SR, 8000])
    together = encoder(batch, lengths)
    alone = encoder(batch[1:, :8000], lengths[1:])
    torch.testing.assert_close(together.features[1], alone.features[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(together.mask[1], alone.mask[0])
