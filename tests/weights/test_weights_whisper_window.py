"""Whisper on clips shorter than 30 s with `window_seconds`, on the real tiny.en weights and ESC-10 clips.

The windowed encoder is checked against a computation by hand from the Hugging Face model's own layers
(positional table cut to the window), and against the standard 30 s encoder. The two differ: in the
30 s run the clip's frames also attend to the 25 s of padding after it. Measured on the 8 ESC-10 clips
below (5 s each, one per category), 5 s window vs 30 s: per-frame cosine similarity 0.913 on average
(0.840 for the least similar clip), 0.936 over the first 25 frames and 0.786 over the last 25, next to
where the inputs differ; 0.3 % of frames below 0.5; relative L2 difference per frame 0.335 (median).
The test bounds those figures with some room: the window changes what each frame sees, not what the
encoder is.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import WhisperFeatureExtractor, WhisperModel
from weights_testing import SAMPLE_RATE, esc10_clips, pad

from mint.encoders import EncoderConfig, build_encoder

WINDOW = 5.0
FRAMES = int(WINDOW * SAMPLE_RATE) // 320  # encoder frames: two 10 ms mel hops each


def _encoder(window_seconds: float | None):
    return build_encoder(
        EncoderConfig(kind="whisper", name_or_path="weights:whisper-tiny.en", window_seconds=window_seconds)
    )


@pytest.fixture(scope="module")
def clips(tiny_en_dir):
    return esc10_clips(8, seconds=WINDOW, step=50)


@pytest.fixture(scope="module")
def windowed(tiny_en_dir):
    return _encoder(WINDOW)


@pytest.fixture(scope="module")
def full(tiny_en_dir):
    return _encoder(None)


def test_the_window_runs_the_encoder_with_its_positional_table_cut(windowed, tiny_en_dir, clips) -> None:
    output = windowed(*pad(clips[:2]))
    assert output.features.shape == (2, FRAMES, 384)

    # By hand: the mel of a 5 s window, then the model's own conv stem, the first FRAMES positional rows,
    # its layers and final norm.
    model = WhisperModel.from_pretrained(tiny_en_dir, dtype=torch.float32).encoder.eval()
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_en_dir)
    mels = extractor(
        clips[:2], sampling_rate=SAMPLE_RATE, max_length=int(WINDOW * SAMPLE_RATE), return_tensors="pt"
    )["input_features"]
    assert mels.shape[-1] == 2 * FRAMES
    with torch.no_grad():
        hidden = nn.functional.gelu(model.conv2(nn.functional.gelu(model.conv1(mels)))).transpose(1, 2)
        hidden = hidden + model.embed_positions.weight[:FRAMES]
        for layer in model.layers:
            hidden = layer(hidden, None)
        expected = model.layer_norm(hidden)
    torch.testing.assert_close(output.features, expected, atol=1e-5, rtol=1e-5)


def test_the_window_stays_close_to_the_30_s_encoder(windowed, full, clips) -> None:
    batch = pad(clips)
    short, long = windowed(*batch), full(*batch)
    assert torch.equal(short.mask, long.mask) and long.features.shape[1] == FRAMES
    real = long.mask
    cosine = nn.functional.cosine_similarity(short.features, long.features, dim=-1)
    assert cosine[real].mean() > 0.88
    assert cosine.mean(dim=1).min() > 0.8
    assert (cosine[real] < 0.5).float().mean() < 0.02
    relative = (short.features - long.features).norm(dim=-1) / long.features.norm(dim=-1)
    assert relative[real].median() < 0.45
    # The clip's first frames, far from where the two inputs differ, agree best.
    assert cosine[:, :25].mean() > 0.9 > cosine[:, -25:].mean()


def test_a_clips_features_do_not_depend_on_its_batch_mates(windowed, clips) -> None:
    short = clips[1][: 2 * SAMPLE_RATE]
    together = windowed(*pad([clips[0], short, clips[2]]))
    alone = windowed(*pad([short]))
    assert alone.features.shape == (1, 100, 384)
    torch.testing.assert_close(together.features[1, :100], alone.features[0], atol=1e-5, rtol=1e-5)
    assert not together.mask[1, 100:].any()


def test_the_feature_cache_keys_on_the_window(windowed, full) -> None:
    assert windowed.identity()["front_end"]["window_samples"] == int(WINDOW * SAMPLE_RATE)
    assert full.identity()["front_end"]["window_samples"] == 30 * SAMPLE_RATE
    assert windowed.identity() != full.identity()
