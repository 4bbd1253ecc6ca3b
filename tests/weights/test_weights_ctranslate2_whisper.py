"""CTranslate2 Whisper -> Hugging Face: the converted tiny.en computes what CTranslate2 itself computes.

The reference is CTranslate2's own runtime (`ctranslate2.models.Whisper`) on the packaged model.bin,
asked to compute in float32. The converted model keeps the fp16 weights exactly (upcast to float32 when
loaded), so both sides multiply the very same numbers and differ only in the order of float32 sums
(CTranslate2's CPU kernels vs torch's): measured at most 5.9e-5 on the encoder outputs of 10 ESC-10
clips (values up to 12.9, so ~5e-6 relative) and 4.4e-5 on the decoder logits of the spoken sentence
(values up to 25.7) on an Intel Xeon with AVX-512; on an AVX2-only AMD EPYC, whose kernels block the sums
otherwise, 6.5e-4 on the encoder outputs, at a dozen of 1.15 million elements (99.99 % within 5.6e-5).
A conversion fault shows far above that: a tensor off by a single fp16 step (2^-11 relative) moves
outputs of those sizes by 6e-3 to 1e-2, and a misplaced or transposed tensor by O(1). The tolerances sit
between, a third of the smallest fault: 2e-3 on encoder outputs, 2e-3 on decoder logits.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration
from weights_testing import SENTENCE, esc10_clips, pad, require_weights, spoken_sentence

from mint.encoders import EncoderConfig, build_encoder
from mint.errors import CheckpointError
from mint.weights.ctranslate2_whisper import read_model_bin
from mint.weights.registry import file_path
from mint_testing import require_module

ENCODER_ATOL = 2e-3
LOGITS_ATOL = 2e-3


@pytest.fixture(scope="module")
def model_bin() -> Path:
    return file_path(require_weights("whisper-tiny.en").files[0])


@pytest.fixture(scope="module")
def reference(model_bin):
    ctranslate2 = require_module("ctranslate2", "pip install ctranslate2 (a dev dependency)")
    return ctranslate2.models.Whisper(str(model_bin.parent), device="cpu", compute_type="float32")


@pytest.fixture(scope="module")
def converted(tiny_en_dir):
    return WhisperForConditionalGeneration.from_pretrained(tiny_en_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def extractor(tiny_en_dir):
    return WhisperFeatureExtractor.from_pretrained(tiny_en_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny_en_dir):
    return AutoTokenizer.from_pretrained(tiny_en_dir)


def _reference_encode(reference, mels: np.ndarray) -> torch.Tensor:
    import ctranslate2

    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mels, dtype=np.float32))
    return torch.from_numpy(np.array(reference.encode(features, to_cpu=True)))


def test_encoder_equals_ctranslate2_on_real_audio(reference, converted, extractor) -> None:
    clips = esc10_clips(2, step=40)  # two categories
    mels = extractor(clips, sampling_rate=16000, return_tensors="np")["input_features"]
    expected = _reference_encode(reference, mels)
    with torch.no_grad():
        ours = converted.model.encoder(torch.from_numpy(mels)).last_hidden_state
    assert ours.shape == expected.shape == (2, 1500, 384)
    torch.testing.assert_close(ours, expected, atol=ENCODER_ATOL, rtol=0)

    # The same through mint's encoder adapter, which keeps the clip's 250 frames of the 30 s window.
    encoder = build_encoder(EncoderConfig(kind="whisper", name_or_path="weights:whisper-tiny.en"))
    output = encoder(*pad(clips))
    frames = output.mask.sum(dim=1).tolist()
    assert frames == [250, 250]
    torch.testing.assert_close(output.features, expected[:, :250], atol=ENCODER_ATOL, rtol=0)


def test_decoder_transcribes_speech_like_ctranslate2(
    reference, converted, extractor, tokenizer, tmp_path
) -> None:
    import ctranslate2

    mels = extractor(spoken_sentence(tmp_path), sampling_rate=16000, return_tensors="np")["input_features"]
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    # Plain greedy search: CTranslate2's default suppression of blanks and listed tokens is switched off.
    result = reference.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(mels)),
        [prompt],
        beam_size=1,
        max_length=64,
        suppress_blank=False,
        suppress_tokens=[],
        return_logits_vocab=True,
    )[0]
    expected_tokens = result.sequences_ids[0]
    expected_logits = torch.stack([torch.from_numpy(np.array(step)) for step in result.logits[0]])

    # Greedy decoding with the converted model, step by step, without transformers' generation rules.
    tokens = list(prompt)
    logits = []
    with torch.no_grad():
        encoded = converted.model.encoder(torch.from_numpy(mels)).last_hidden_state
        for _ in range(64):
            step = converted(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor([tokens])).logits[
                0, -1
            ]
            logits.append(step)
            if int(step.argmax()) == converted.config.eos_token_id:
                break
            tokens.append(int(step.argmax()))
    assert tokens[2:] == expected_tokens
    assert len(logits) == len(expected_logits)
    torch.testing.assert_close(torch.stack(logits), expected_logits, atol=LOGITS_ATOL, rtol=0)

    # And it is speech recognition, not noise: most words of the sentence come back.
    heard = set(re.findall(r"[a-z]+", tokenizer.decode(expected_tokens).lower()))
    spoken = set(re.findall(r"[a-z]+", SENTENCE.lower()))
    assert len(heard & spoken) >= len(spoken) - 2, heard


def test_a_truncated_model_file_is_refused(model_bin, tmp_path) -> None:
    part = tmp_path / "model.bin"
    with model_bin.open("rb") as handle:
        part.write_bytes(handle.read(1 << 20))
    with pytest.raises(CheckpointError, match="truncated"):
        read_model_bin([part])


def test_a_model_that_is_not_whisper_is_refused(tmp_path) -> None:
    name = b"TransformerSpec\0"
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<IH", 6, len(name)) + name + struct.pack("<II", 1, 0))
    with pytest.raises(CheckpointError, match="only WhisperSpec"):
        read_model_bin([path])
