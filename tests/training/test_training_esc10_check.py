"""scripts/esc10_check.py end to end on a handful of real ESC-10 clips, a tiny model and a few steps."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from mint.data.manifest import read_manifest
from mint_testing import ESC10, require_shared, tiny_model_overrides

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("Dog bark", "Rooster", "Chainsaw")


def _script():
    spec = importlib.util.spec_from_file_location("esc10_check", REPO / "scripts" / "esc10_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_esc10(folder: Path) -> dict[str, list[str]]:
    """An ESC-10 layout of two fold-1 clips and one fold-5 clip per class: a table of real rows, and the
    real audio folder linked in (nothing copied)."""
    with open(ESC10 / "meta.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen: dict[str, list[str]] = {"train": [], "test": []}
    kept = []
    for category in CLASSES:
        for fold, count, part in (("1", 2, "train"), ("5", 1, "test")):
            picked = [row for row in rows if row["category"] == category and row["fold"] == fold][:count]
            kept += picked
            chosen[part] += [Path(row["filename"]).stem for row in picked]
    folder.mkdir()
    with open(folder / "meta.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    (folder / "audio").symlink_to((ESC10 / "audio").resolve(), target_is_directory=True)
    return chosen


def test_missing_data_fails_with_a_clear_message(tmp_path, capsys):
    assert _script().main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "ESC-10 data not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_check_trains_on_folds_1_to_4_and_classifies_fold_5(tmp_path, capsys):
    require_shared(ESC10 / "meta.csv")
    chosen = _small_esc10(tmp_path / "esc10")
    out = tmp_path / "out"
    overrides = [
        *tiny_model_overrides(),
        "trainer.max_steps=3",
        "trainer.batch_size=4",
        "trainer.warmup_steps=1",
        "trainer.log_every=1",
        "trainer.save_every=3",
        "trainer.progress_bar=false",
    ]
    args = ["--data", str(tmp_path / "esc10"), "--out", str(out), "--no-progress", "--target", "1.01"]
    # No accuracy reaches 1.01: the check must report the miss through its exit status.
    assert _script().main([*args, *overrides]) == 1

    assert [record.id for record in read_manifest(out / "data" / "train.jsonl")] == chosen["train"]
    assert [record.id for record in read_manifest(out / "data" / "test.jsonl")] == chosen["test"]
    steps = [
        json.loads(line)["step"] for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3]

    result = json.loads((out / "esc10_result.json").read_text())
    predictions = [
        json.loads(line) for line in (out / "classify" / "predictions.jsonl").read_text().splitlines()
    ]
    assert sorted(p["id"] for p in predictions) == sorted(chosen["test"])
    correct = sum(p["prediction"] in p["labels"] for p in predictions)
    assert result["accuracy"] == pytest.approx(correct / len(chosen["test"]))
    # Re-ranked accuracy reported beside ATC's, from the same predictions file.
    reranked = sum(p["reranked_prediction"] in p["labels"] for p in predictions)
    assert result["reranked"]["accuracy"] == pytest.approx(reranked / len(chosen["test"]))
    assert result["reranked"]["top_k"] == 3 and "not calibrated" in result["reranked"]["weight_source"]
    assert result["chance"] == pytest.approx(1 / len(CLASSES))
    assert result["classes"] == sorted(CLASSES)
    assert result["test_clips"] == len(chosen["test"])
    assert result["passed"] is False and result["target"] == 1.01
    assert result["caption_templates"] and all("{label}" in t for t in result["caption_templates"])
    assert f"accuracy {result['accuracy']:.4f}" in capsys.readouterr().out
