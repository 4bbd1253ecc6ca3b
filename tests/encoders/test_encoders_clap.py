"""CLAP audio-tower adapter: [B, T * F, D] layout, content mask, determinism, agreement with Hugging Face."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from encoders_checkpoints import CLAP_AUDIO, CLAP_WINDOW_SECONDS
from safetensors.torch import load_file
from transformers import ClapFeatureExtractor, ClapModel

from mint.encoders import EncoderConfig, build_encoder
from mint.errors import ConfigError

SR = 48000
WINDOW = CLAP_WINDOW_SECONDS * SR
WINDOW_FRAMES = 1 + WINDOW // 480  # the extractor's centred STFT
SPEC_WIDTH = CLAP_AUDIO["spec_size"] * (CLAP_AUDIO["spec_size"] // CLAP_AUDIO["num_mel_bins"])
# Two Swin stages: 64 / 4 = 16 patches, merged once to 8; 4 time chunks stacked on the frequency axis.
TIME_COLUMNS, FREQ_ROWS = 32, 2
HIDDEN = CLAP_AUDIO["patch_embeds_hidden_size"] * 2


def _batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, length in enumerate(lengths):
        batch[row, :length] = 0.3 * torch.randn(length, generator=generator)
    return batch, torch.tensor(lengths)


def _expected_columns(content_samples: int) -> int:
    """Time columns whose first resized frame maps (aligned-corner resize) into the content's frames."""
    content_frames = min(-(-content_samples // 480), WINDOW_FRAMES)
    scale = (WINDOW_FRAMES - 1) / (SPEC_WIDTH - 1)
    return sum(
        column * (SPEC_WIDTH / TIME_COLUMNS) * scale < content_frames for column in range(TIME_COLUMNS)
    )


def _build(make_checkpoint, variant: str = ""):
    path = make_checkpoint("clap", variant=variant)
    return build_encoder(EncoderConfig(kind="clap", name_or_path=str(path))), path


def test_layout_and_agreement_with_hugging_face(make_checkpoint) -> None:
    encoder, path = _build(make_checkpoint)
    lengths = [WINDOW, SR // 2]
    batch, lengths_t = _batch(lengths)
    output = encoder(batch, lengths_t)
    assert output.features.shape == (2, TIME_COLUMNS * FREQ_ROWS, HIDDEN)
    assert encoder.hidden_size == HIDDEN and encoder.sample_rate == SR

    # The audio tower of the saved two-tower checkpoint is what got loaded, weight for weight.
    saved = load_file(path / "model.safetensors")
    for name, value in encoder.model.state_dict().items():
        torch.testing.assert_close(value, saved[f"audio_model.{name}"], rtol=0, atol=0)

    extractor = ClapFeatureExtractor.from_pretrained(path)
    tower = ClapModel.from_pretrained(path).audio_model.eval()
    for row, length in enumerate(lengths):
        mel = extractor(batch[row, :length].numpy(), sampling_rate=SR, return_tensors="pt")["input_features"]
        with torch.no_grad():
            grid = tower(input_features=mel, is_longer=torch.zeros(1, 1, dtype=torch.bool)).last_hidden_state
        # [1, D, F, T] -> tokens in time order, frequency rows within a time step.
        reference = grid[0].permute(2, 1, 0).reshape(TIME_COLUMNS * FREQ_ROWS, HIDDEN)
        real = output.mask[row]
        torch.testing.assert_close(output.features[row][real], reference[real], atol=1e-4, rtol=1e-4)


def test_repeat_padding_counts_repeats_as_content(make_checkpoint) -> None:
    encoder, _ = _build(make_checkpoint)
    lengths = [WINDOW, SR // 2, int(0.3 * SR)]
    output = encoder(*_batch(lengths))
    # A 0.5 s clip repeats 4 times (the whole window); 0.3 s repeats 6 times (1.8 s of the 2 s).
    repeats = [1, 4, 6]
    expected = [_expected_columns(n * r) * FREQ_ROWS for n, r in zip(lengths, repeats, strict=True)]
    assert expected[:2] == [TIME_COLUMNS * FREQ_ROWS] * 2 and expected[2] < TIME_COLUMNS * FREQ_ROWS
    assert output.mask.sum(dim=1).tolist() == expected


def test_zero_padding_masks_the_tail_and_leaves_the_clip_alone(make_checkpoint) -> None:
    encoder, _ = _build(make_checkpoint, variant="pad")
    batch, lengths = _batch([WINDOW, SR // 2])
    together = encoder(batch, lengths)
    columns = _expected_columns(SR // 2)  # hand-worked: t * 8 * 200 / 255 < 50 for t = 0..7
    assert columns == 8
    assert together.mask[1].tolist() == [t < columns for t in range(TIME_COLUMNS) for _ in range(FREQ_ROWS)]
    alone = encoder(batch[1:, : SR // 2], lengths[1:])
    torch.testing.assert_close(together.features[1], alone.features[0], atol=1e-5, rtol=1e-5)


def test_fused_model_is_deterministic_and_leaves_numpy_rng_alone(make_checkpoint) -> None:
    encoder, _ = _build(make_checkpoint, variant="fused")
    batch, lengths = _batch([SR, SR // 3])
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    first = encoder(batch, lengths)
    assert np.random.rand() == expected_draw
    second = encoder(batch, lengths)
    torch.testing.assert_close(first.features, second.features, rtol=0, atol=0)


def test_long_clips_are_cut_to_the_first_window(make_checkpoint) -> None:
    encoder, _ = _build(make_checkpoint)
    batch, lengths = _batch([WINDOW + SR])
    with pytest.warns(UserWarning, match="cut"):
        long = encoder(batch, lengths)
    head = encoder(batch[:, :WINDOW], torch.tensor([WINDOW]))
    torch.testing.assert_close(long.features, head.features, rtol=0, atol=0)


def test_extractor_window_wider_than_the_tower_is_a_config_error(make_checkpoint, tmp_path) -> None:
    path = make_checkpoint("clap", path=tmp_path / "checkpoint")
    # The default LAION extractor (10 s, 1001 frames) does not fit the tiny tower's 256-frame width.
    (path / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match="1001 frames"):
        build_encoder(EncoderConfig(kind="clap", name_or_path=str(path)))
