"""Runners that need the LLM: generative (rank) classification and captioning, and `mint eval caption-metrics`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.config import load_config
from mint.data.synth import SynthSpec, generate_corpus
from mint.evaluation.captioning import DEFAULT_INSTRUCTION as CAPTION_INSTRUCTION
from mint.evaluation.classify import DEFAULT_INSTRUCTION as CLASSIFY_INSTRUCTION
from mint.evaluation.metrics import CAPTION_METRICS, SPICE_UNAVAILABLE
from mint.llm.config import LLMConfig
from mint.modeling import MintModel
from mint.training.config import PretrainConfig
from mint_testing import tiny_pretrain_overrides

REPO = Path(__file__).resolve().parents[2]
needs_java = pytest.mark.usefixtures("java")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models run fastest on one thread; more only contend on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny stage-2 model: the tiny stage-1 Bridge-Net in front of the seeded in-memory `random:t5` LLM."""
    folder = tmp_path_factory.mktemp("stage2-model")
    config = load_config(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", tiny_pretrain_overrides(folder))
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(
            config.model,
            llm=LLMConfig(name_or_path="random:t5", max_instruction_length=32, max_response_length=16),
        ),
    )
    torch.manual_seed(2)
    return MintModel.from_config(config.model).save_pretrained(folder / "model")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stage2-data")
    generate_corpus(SynthSpec(num_clips=5, seed=6, clip_seconds=1.5, max_events=1), folder, 1, {"test": 1.0})
    (folder / "audio" / "broken.wav").write_bytes(b"")
    with (folder / "test.jsonl").open("a") as handle:
        handle.write(
            json.dumps({"id": "broken", "audio": "audio/broken.wav", "captions": ["x"], "labels": ["bell"]})
        )
    return folder / "test.jsonl"


def _clips(model: MintModel, manifest: Path) -> list[tuple[dict, object]]:
    """(record, encoded audio) of each readable clip, one at a time."""
    keep = round(model.config.max_audio_seconds * model.sample_rate)
    clips = []
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        if record["id"] == "broken":
            continue
        samples, _ = sf.read(manifest.parent / record["audio"], dtype="float32")
        waveform = torch.from_numpy(samples[:keep])[None]
        clips.append((record, model.encode_audio(waveform, torch.tensor([waveform.shape[1]]))))
    return clips


def test_generative_classification_ranks_labels_by_llm_likelihood(model_dir, manifest, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "classify", str(manifest), "--model", str(model_dir), "--out", str(out), "--no-progress"]
    assert main([*args, "--method", "generative", "--batch-size", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "generative" and results["options"]["instruction"] == CLASSIFY_INSTRUCTION
    assert results["skipped"]["count"] == 1 and results["data"]["clips_evaluated"] == 5
    labels = results["options"]["labels"]

    model = MintModel.from_pretrained(model_dir).eval()
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    with torch.no_grad():
        for (record, audio), prediction in zip(_clips(model, manifest), predictions, strict=True):
            scores = model.score(audio, [CLASSIFY_INSTRUCTION], labels)[0]
            assert prediction["id"] == record["id"]
            assert prediction["prediction"] == labels[int(scores.argmax())]
            for label, score in prediction["top"]:
                assert score == pytest.approx(float(scores[labels.index(label)]), abs=1e-4)


@needs_java
def test_caption_runner_generates_with_beam_search_and_scores(model_dir, manifest, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "caption", str(manifest), "--model", str(model_dir), "--out", str(out), "--no-progress"]
    assert main([*args, "--beams", "2", "--max-new-tokens", "6", "--batch-size", "3"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["options"]["num_beams"] == 2 and results["options"]["instruction"] == CAPTION_INSTRUCTION
    assert results["skipped"]["by_reason"] == {"unreadable audio": 1}

    model = MintModel.from_pretrained(model_dir).eval()
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    settings = {"num_beams": 2, "max_new_tokens": 6, "min_new_tokens": 1, "length_penalty": 1.0}
    with torch.no_grad():
        for (record, audio), row in zip(_clips(model, manifest), rows, strict=True):
            assert row["id"] == record["id"] and row["references"] == record["captions"]
            assert row["candidate"] == model.generate(audio, [CAPTION_INSTRUCTION], **settings)[0]
    # The scores themselves are checked against pycocoevalcap in the metrics tests (each METEOR run costs
    # over ten seconds here); this checks that the runner reports all of them, SPICE as unavailable.
    metrics = results["metrics"]
    assert all(isinstance(metrics[name], float) for name in CAPTION_METRICS if not name.startswith("SPI"))
    assert metrics["SPICE"] is None and metrics["unavailable"]["SPICE"] == SPICE_UNAVAILABLE
    assert "CIDEr-D" in (out / "summary.md").read_text()


@needs_java
def test_caption_metrics_command_prints_the_metrics_json(tmp_path, capsys):
    rows = [
        {
            "id": 1,
            "candidate": "a dog barks twice",
            "references": ["a dog barks twice", "two barks of a dog"],
        },
        {
            "id": "b",
            "candidate": "rain falls on a roof",
            "references": ["rain falls on a roof", "heavy rain"],
        },
    ]
    path = tmp_path / "captions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["eval", "caption-metrics", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    # Every candidate equals one of its references, so every n-gram matches and no brevity penalty applies.
    for order in range(1, 5):
        assert printed[f"BLEU-{order}"] == pytest.approx(1.0, abs=1e-6)
    assert printed["SPICE"] is None and printed["SPIDEr"] is None
    assert printed["unavailable"]["SPICE"] == SPICE_UNAVAILABLE

    assert main(["eval", "caption-metrics", str(path), "--spice-jar", str(tmp_path / "none.jar")]) == 2
    assert "spice-1.0.jar" in capsys.readouterr().err
