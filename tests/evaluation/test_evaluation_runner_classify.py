"""`mint eval classify`: ATC zero-shot classification end to end, checked against a by-hand recomputation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, f1_score

from mint.cli.main import main
from mint.config import load_config
from mint.data.pairs import label_text
from mint.data.synth import SynthSpec, generate_corpus, single_event_spec
from mint.errors import ConfigError
from mint.evaluation.classify import ClassifyOptions, run_classification
from mint.inference.embedding import DEFAULT_TEMPLATES
from mint.modeling import MintModel
from mint.training.config import PretrainConfig
from mint_testing import ESC10, jitter_trainable_, read_jsonl, require_shared, tiny_pretrain_overrides

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models run fastest on one thread; more only contend on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classify-model")
    config = load_config(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", tiny_pretrain_overrides(folder))
    torch.manual_seed(0)
    return MintModel.from_config(config.model).save_pretrained(folder / "model")


def _manifest_with_a_corrupt_clip(folder: Path, spec: SynthSpec) -> Path:
    generate_corpus(spec, folder, workers=1, splits={"test": 1.0})
    (folder / "audio" / "broken.wav").write_bytes(b"RIFF this is not audio at all")
    lines = (folder / "test.jsonl").read_text().splitlines()
    lines.insert(3, json.dumps({"id": "broken", "audio": "audio/broken.wav", "labels": ["bell"]}))
    manifest = folder / "eval.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def single_label(tmp_path_factory) -> Path:
    spec = single_event_spec(24, seed=3, clip_seconds=1.5)
    return _manifest_with_a_corrupt_clip(tmp_path_factory.mktemp("single"), spec)


@pytest.fixture(scope="module")
def multi_label(tmp_path_factory) -> Path:
    spec = SynthSpec(num_clips=24, seed=4, clip_seconds=2.1, min_events=2, max_events=2)
    return _manifest_with_a_corrupt_clip(tmp_path_factory.mktemp("multi"), spec)


def _readable_records(manifest: Path) -> list[dict]:
    records = read_jsonl(manifest)
    return [record for record in records if record["id"] != "broken"]


@torch.no_grad()
def _by_hand_scores(model_dir: Path, manifest: Path, labels: list[str]) -> np.ndarray:
    """Clip-by-clip, template-by-template ATC scores [N, C], without the runner's batching or helpers."""
    model = MintModel.from_pretrained(model_dir).eval()
    classes = []
    for label in labels:
        texts = [template.replace("{label}", label) for template in DEFAULT_TEMPLATES]
        embeddings = torch.stack([model.text_embeddings(*model.tokenize([text]))[0] for text in texts])
        classes.append(F.normalize(embeddings.mean(dim=0), dim=0))
    classes = torch.stack(classes)
    keep = round(model.config.max_audio_seconds * model.sample_rate)
    rows = []
    for record in _readable_records(manifest):
        samples, rate = sf.read(manifest.parent / record["audio"], dtype="float32")
        assert rate == model.sample_rate
        waveform = torch.from_numpy(samples[:keep])[None]
        queries = model.audio_embeddings(model.encode_audio(waveform, torch.tensor([waveform.shape[1]])))[0]
        rows.append((queries @ classes.T).amax(dim=0))
    return torch.stack(rows).numpy()


def test_label_names_become_natural_text():
    assert label_text("Dog bark") == "dog bark"
    assert label_text("chirping_birds") == "chirping birds"
    assert label_text("  Crackling_fire  ") == "crackling fire"
    assert label_text("TV_static") == "TV static"


def test_classify_cli_matches_a_by_hand_atc_recomputation(model_dir, single_label, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["eval", "classify", str(single_label), "--model", str(model_dir), "--out", str(out)]
    assert main([*args, "--no-progress", "--batch-size", "5", "--device", "cpu"]) == 0
    assert "accuracy" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    records = _readable_records(single_label)
    labels = sorted({record["labels"][0] for record in records})

    assert results["model"]["path"] == str(model_dir.resolve())
    assert results["model"]["weights_sha256"] == _sha256(model_dir / "model.safetensors")
    assert results["data"]["manifest_sha256"] == _sha256(single_label)
    assert results["data"]["clips_in_manifest"] == 25 and results["data"]["clips_evaluated"] == 24
    assert results["options"]["templates"] == list(DEFAULT_TEMPLATES)
    assert results["options"]["labels"] == labels and not results["multi_label"]
    skipped = results["skipped"]
    assert skipped["count"] == 1 and skipped["by_reason"] == {"unreadable audio": 1}
    assert skipped["first"][0]["id"] == "broken" and "broken.wav" in skipped["first"][0]["detail"]

    scores = _by_hand_scores(model_dir, single_label, labels)
    expected = [labels[column] for column in scores.argmax(axis=1)]
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [record["id"] for record in records]
    assert [p["prediction"] for p in predictions] == expected
    for row, prediction in enumerate(predictions):
        for label, score in prediction["top"]:
            assert score == pytest.approx(float(scores[row, labels.index(label)]), abs=1e-5)

    truth = [record["labels"][0] for record in records]
    metrics = results["metrics"]
    assert metrics["accuracy"] == pytest.approx(np.mean(np.array(expected) == np.array(truth)))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, expected, average="macro"))
    assert set(metrics["per_class"]) == set(labels)
    assert np.sum(metrics["confusion_matrix"]) == 24
    assert (out / "confusion_matrix.png").read_bytes()[:8] == PNG_MAGIC
    summary = (out / "summary.md").read_text()
    assert "accuracy" in summary and "broken" in summary and "confusion_matrix.png" in summary


def test_reranked_classification_matches_a_by_hand_atc_plus_atm_score(
    model_dir, single_label, tmp_path, capsys
):
    model_copy = tmp_path / "model"
    # Jittered, so that ATM's log-odds differ clearly between pairs and re-ranking changes predictions.
    jitter_trainable_(MintModel.from_pretrained(model_dir), 0.2).save_pretrained(model_copy)
    out, k, weight = tmp_path / "out", 3, 0.5
    args = ["eval", "classify", str(single_label), "--model", str(model_copy), "--out", str(out)]
    options = ["--no-progress", "--batch-size", "5", "--device", "cpu", "--rerank", str(k)]
    assert main([*args, *options, "--atm-weight", str(weight)]) == 0
    assert "re-ranked top 3" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    records = _readable_records(single_label)
    labels = sorted({record["labels"][0] for record in records})

    model = MintModel.from_pretrained(model_copy).eval()
    scores = _by_hand_scores(model_copy, single_label, labels)
    keep = round(model.config.max_audio_seconds * model.sample_rate)
    expected = []
    with torch.no_grad():
        for row, record in enumerate(records):
            samples, _ = sf.read(single_label.parent / record["audio"], dtype="float32")
            waveform = torch.from_numpy(samples[:keep])[None]
            audio = model.encode_audio(waveform, torch.tensor([waveform.shape[1]]))
            best, best_score = None, -np.inf
            for column in np.argsort(-scores[row])[:k]:
                odds = []
                for template in DEFAULT_TEMPLATES:
                    logits = model.match_logits(
                        audio, *model.tokenize([template.replace("{label}", labels[column])])
                    )
                    odds.append(float(logits[0, 1] - logits[0, 0]))
                score = scores[row, column] + weight * np.mean(odds)
                if score > best_score:
                    best, best_score = column, score
            expected.append(labels[best])
    truth = [record["labels"][0] for record in records]
    reranked = results["reranked"]
    assert reranked["k"] == k and reranked["weight"] == weight and reranked["weight_source"] == "option"
    assert [p["reranked_prediction"] for p in read_jsonl(out / "predictions.jsonl")] == expected
    assert reranked["metrics"]["accuracy"] == pytest.approx(np.mean(np.array(expected) == np.array(truth)))
    atc_only = [labels[column] for column in scores.argmax(axis=1)]
    assert expected != atc_only, "re-ranking changed no prediction: the check above would be weak"
    assert results["metrics"]["accuracy"] == pytest.approx(np.mean(np.array(atc_only) == np.array(truth)))
    assert "Re-ranked" in (out / "summary.md").read_text()


def test_rerank_needs_the_atc_method():
    with pytest.raises(ConfigError, match="rerank"):
        ClassifyOptions(method="generative", rerank=3)


def test_runs_are_deterministic_and_independent_of_batching(model_dir, single_label, tmp_path):
    first = run_classification(
        single_label, model_dir, tmp_path / "a", ClassifyOptions(batch_size=7, workers=0, progress=False)
    )
    second = run_classification(
        single_label, model_dir, tmp_path / "b", ClassifyOptions(batch_size=24, workers=2, progress=False)
    )
    assert first["metrics"] == second["metrics"]  # computed from the decisions alone
    # Equal decisions and rankings; the scores equal up to float rounding, which on a GPU depends on the
    # batch shape (bit-identical on CPU).
    a, b = (read_jsonl(tmp_path / run / "predictions.jsonl") for run in ("a", "b"))
    assert [(p["id"], p["prediction"], [label for label, _ in p["top"]]) for p in a] == [
        (p["id"], p["prediction"], [label for label, _ in p["top"]]) for p in b
    ]
    assert [score for p in a for _, score in p["top"]] == pytest.approx(
        [score for p in b for _, score in p["top"]], abs=1e-6
    )


def test_multi_label_manifest_reports_map(model_dir, multi_label, tmp_path):
    results = run_classification(multi_label, model_dir, tmp_path, ClassifyOptions(progress=False))
    assert results["multi_label"]
    records = _readable_records(multi_label)
    labels = results["options"]["labels"]
    scores = _by_hand_scores(model_dir, multi_label, labels)
    truth = np.array([[label in record["labels"] for label in labels] for record in records], dtype=int)
    present = truth.sum(axis=0) > 0
    reference = [average_precision_score(truth[:, c], scores[:, c]) for c in np.flatnonzero(present)]
    assert results["metrics"]["mAP"] == pytest.approx(np.mean(reference), abs=1e-6)
    hits = truth[np.arange(len(records)), scores.argmax(axis=1)]
    assert results["metrics"]["top1_accuracy"] == pytest.approx(hits.mean())
    assert "mAP" in (tmp_path / "summary.md").read_text()


def test_label_and_template_files(model_dir, single_label, tmp_path, capsys):
    labels = sorted({record["labels"][0] for record in _readable_records(single_label)})[:3]
    (tmp_path / "labels.txt").write_text("# three of the classes\n" + "\n".join(labels) + "\n")
    (tmp_path / "templates.txt").write_text("a {label} is heard\n\nsound of {label}\n")
    out = tmp_path / "out"
    common = ["eval", "classify", str(single_label), "--model", str(model_dir), "--no-progress"]
    files = ["--labels", str(tmp_path / "labels.txt"), "--templates", str(tmp_path / "templates.txt")]
    assert main([*common, "--out", str(out), *files]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["options"]["labels"] == labels
    assert results["options"]["templates"] == ["a {label} is heard", "sound of {label}"]
    in_list = sum(record["labels"][0] in labels for record in _readable_records(single_label))
    assert results["data"]["clips_evaluated"] == in_list
    assert results["skipped"]["by_reason"]["label not in the class list"] == 24 - in_list

    (tmp_path / "bad.txt").write_text("the sound of a dog\n")
    assert main([*common, "--out", str(tmp_path / "x"), "--templates", str(tmp_path / "bad.txt")]) == 2
    assert "lacks the {label} slot" in capsys.readouterr().err


def test_generative_classification_and_captioning_need_a_stage_2_model(
    model_dir, single_label, tmp_path, capsys
):
    common = [str(single_label), "--model", str(model_dir), "--out", str(tmp_path), "--no-progress"]
    assert main(["eval", "classify", *common, "--method", "generative"]) == 2
    assert "no LLM" in capsys.readouterr().err
    assert main(["eval", "caption", *common]) == 2
    assert "cannot caption" in capsys.readouterr().err


def test_esc10_fold_classification_reports_every_class(model_dir, tmp_path):
    require_shared(ESC10 / "meta.csv")
    manifest = tmp_path / "esc10.jsonl"
    assert main(["data", "prepare", "esc50", str(ESC10), "--out", str(manifest), "--folds", "5"]) == 0
    out = tmp_path / "out"
    assert (
        main(
            ["eval", "classify", str(manifest), "--model", str(model_dir), "--out", str(out), "--no-progress"]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    classes = {line.split(",")[3] for line in (ESC10 / "meta.csv").read_text().splitlines()[1:]}
    assert len(classes) == 10 and set(results["metrics"]["per_class"]) == classes
    supports = [row["support"] for row in results["metrics"]["per_class"].values()]
    assert sum(supports) == results["data"]["clips_evaluated"] == 80 - results["skipped"]["count"]
    assert 0.0 <= results["metrics"]["accuracy"] <= 1.0
    assert (out / "confusion_matrix.png").read_bytes()[:8] == PNG_MAGIC
