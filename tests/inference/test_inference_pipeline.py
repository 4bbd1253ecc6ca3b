"""MintPipeline on paths, bytes, files and arrays, checked against direct calls of the model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

from mint.data.instructions import TEMPLATES
from mint.errors import AudioError, ConfigError
from mint.inference import MintPipeline
from mint.modeling import MintModel

GENERATION = {"max_new_tokens": 5, "num_beams": 1}


@pytest.fixture(scope="module")
def pipeline(stage2_dir) -> MintPipeline:
    return MintPipeline.from_pretrained(stage2_dir, batch_size=2)


@pytest.fixture(scope="module")
def model(stage2_dir) -> MintModel:
    """The same saved model loaded on its own: the independent reference."""
    return MintModel.from_pretrained(stage2_dir).eval()


def _samples(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and samples.ndim == 1
    return samples


def _features(model: MintModel, waveform: np.ndarray):
    batch = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None]
    return model.encode_audio(batch, torch.tensor([batch.shape[1]]))


@torch.no_grad()
def _reference_embeddings(model: MintModel, waveform: np.ndarray) -> np.ndarray:
    return model.audio_embeddings(_features(model, waveform))[0].numpy()


def test_device_auto_picks_cuda_when_present_else_cpu(pipeline):
    assert pipeline.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pipeline.has_llm and pipeline.sample_rate == 16000


def test_every_input_form_gives_the_models_own_embeddings(pipeline, model, clips):
    path = clips[0]
    samples = _samples(path)
    expected = _reference_embeddings(model, samples)
    raw = path.read_bytes()
    forms = {
        "str path": str(path),
        "Path": path,
        "bytes": raw,
        "bytearray": bytearray(raw),
        "file object": io.BytesIO(raw),
        "(array, rate)": (samples, 16000),
        "int16 (array, rate)": ((samples * 32767).astype(np.int16), 16000),
    }
    for name, form in forms.items():
        got = pipeline.embed_audio(form)
        assert got.shape == (1, *expected.shape), name
        tolerance = 2e-3 if name.startswith("int16") else 1e-5
        np.testing.assert_allclose(got[0], expected, atol=tolerance, err_msg=name)
    from_array = pipeline.embed_audio(samples, sample_rate=16000)
    from_tensor = pipeline.embed_audio(torch.from_numpy(samples), sample_rate=16000)
    np.testing.assert_allclose(from_array[0], expected, atol=1e-5)
    np.testing.assert_allclose(from_tensor[0], expected, atol=1e-5)


def test_load_audio_gives_the_models_clips_cropped_to_its_length(pipeline, clips):
    samples = _samples(clips[0])
    long = np.concatenate([samples, samples])
    loaded = pipeline.load_audio([(long, 16000), clips[0]])
    limit = round(pipeline.model.config.max_audio_seconds * 16000)
    np.testing.assert_array_equal(loaded[0], long[:limit])
    np.testing.assert_allclose(loaded[1], samples[:limit], atol=1e-7)


def test_arrays_at_another_rate_are_mixed_down_and_resampled(pipeline, model, clips):
    mono = soxr.resample(_samples(clips[1]), 16000, 32000)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    reference = soxr.resample(stereo.mean(axis=1), 32000, 16000, quality="HQ")
    np.testing.assert_allclose(
        pipeline.embed_audio((stereo, 32000))[0], _reference_embeddings(model, reference), atol=1e-4
    )


def test_bad_inputs_raise_audio_errors_naming_the_clip(pipeline, clips, tmp_path):
    with pytest.raises(AudioError, match="sample rate"):
        pipeline.embed_audio(np.zeros(1600, dtype=np.float32))
    with pytest.raises(AudioError, match="empty list"):
        pipeline.embed_audio([])
    with pytest.raises(AudioError, match=r"audio\[1\]: expected a path"):
        pipeline.embed_audio([clips[0], 42])
    with pytest.raises(AudioError, match="not a recognised audio file"):
        pipeline.embed_audio([clips[0], b"plain text, not audio"])
    with pytest.raises(AudioError, match="file not found"):
        pipeline.caption(tmp_path / "missing.wav")


def test_batches_of_different_lengths_equal_one_clip_at_a_time(pipeline, model, clips):
    # Five clips of different lengths in batches of two: padding must not leak into any clip's output.
    waveforms = [_samples(path)[: 8000 + 3000 * i] for i, path in enumerate(clips[:5])]
    batched = pipeline.embed_audio([(waveform, 16000) for waveform in waveforms])
    for waveform, got in zip(waveforms, batched, strict=True):
        np.testing.assert_allclose(got, _reference_embeddings(model, waveform), atol=1e-5)


def test_pooled_embeddings_are_the_normalised_mean_over_queries(pipeline, clips):
    per_query = pipeline.embed_audio(clips[:3])
    mean = per_query.mean(axis=1)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(pipeline.embed_audio(clips[:3], pooled=True), expected, atol=1e-6)


def test_text_embeddings_equal_the_models(pipeline, model):
    texts = ["a dog barks twice", "rain on a tin roof", "a siren"]
    ids, mask = model.tokenize(texts)
    with torch.no_grad():
        expected = model.text_embeddings(ids, mask).numpy()
    np.testing.assert_allclose(pipeline.embed_text(texts), expected, atol=1e-6)
    assert pipeline.embed_text("a siren").shape == (1, expected.shape[1])


def test_caption_and_ask_equal_direct_generation(pipeline, model, clips):
    with torch.no_grad():
        audio = [_features(model, _samples(path)) for path in clips[:3]]
        captions = [model.generate(a, [TEMPLATES["caption"][0]], **GENERATION)[0] for a in audio]
        answer = model.generate(audio[0], ["what animal is it?"], **GENERATION)[0]
    assert pipeline.caption(clips[0], **GENERATION) == captions[0]
    assert pipeline.caption(clips[:3], **GENERATION) == captions
    assert pipeline.ask(clips[0], "what animal is it?", **GENERATION) == answer
    with pytest.raises(ConfigError, match="2 questions for 1 clips"):
        pipeline.ask([clips[0]], ["a?", "b?"])


def test_generative_classification_ranks_by_the_llms_likelihood(pipeline, model, clips):
    labels = ["dog bark", "Rain", "siren_wail"]
    result = pipeline.classify(clips[0], labels)
    assert result.method == "generative"
    instruction = TEMPLATES["classify"][0]
    with torch.no_grad():
        scores = model.score(
            _features(model, _samples(clips[0])), [instruction], ["dog bark", "rain", "siren wail"]
        )[0]
    expected = sorted(zip(labels, scores.tolist(), strict=True), key=lambda item: -item[1])
    assert result.labels == [label for label, _ in expected]
    np.testing.assert_allclose(result.scores, [score for _, score in expected], atol=1e-4)
    chances = np.exp(np.array(result.scores) - max(result.scores))
    np.testing.assert_allclose(result.probabilities, chances / chances.sum(), atol=1e-6)
    assert result.label == expected[0][0]


def test_atc_classification_is_the_prompt_ensemble_similarity(pipeline, model, clips):
    labels = ["dog bark", "rain", "bird chirp"]
    templates = ["the sound of a {label}", "{label} can be heard"]
    results = pipeline.classify(clips[:2], labels, method="atc", templates=templates)
    with torch.no_grad():
        class_vectors = []
        for label in labels:
            ids, mask = model.tokenize([template.format(label=label) for template in templates])
            class_vectors.append(F.normalize(model.text_embeddings(ids, mask).mean(dim=0), dim=0))
        classes = torch.stack(class_vectors).numpy()
        temperature = float(model.temperature())
    for path, result in zip(clips[:2], results, strict=True):
        queries = _reference_embeddings(model, _samples(path))
        similarity = (queries @ classes.T).max(axis=0)
        order = np.argsort(-similarity, kind="stable")
        assert result.method == "atc" and result.labels == [labels[i] for i in order]
        np.testing.assert_allclose(result.scores, similarity[order], atol=1e-5)
        chances = np.exp((similarity[order] - similarity.max()) / temperature)
        np.testing.assert_allclose(result.probabilities, chances / chances.sum(), atol=1e-5)


def test_label_lists_are_checked(pipeline, clips):
    with pytest.raises(ConfigError, match="two or more distinct"):
        pipeline.classify(clips[0], ["dog"])
    with pytest.raises(ConfigError, match="two or more distinct"):
        pipeline.classify(clips[0], ["dog", "dog "])
    with pytest.raises(ConfigError, match="method"):
        pipeline.classify(clips[0], ["dog", "cat"], method="vote")


def test_stage1_models_classify_with_atc_and_refuse_generation(stage1_dir, clips):
    pipeline = MintPipeline.from_pretrained(stage1_dir)
    assert not pipeline.has_llm
    assert pipeline.classify(clips[0], ["dog", "rain"]).method == "atc"
    with pytest.raises(ConfigError, match="stage-1 model"):
        pipeline.caption(clips[0])
    with pytest.raises(ConfigError, match="stage-1 model"):
        pipeline.classify(clips[0], ["dog", "rain"], method="generative")
