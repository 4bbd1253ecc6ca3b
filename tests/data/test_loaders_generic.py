"""The generic forms: our own JSONL manifest and a CSV with audio plus caption/label columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.data.loaders import prepare
from mint.data.manifest import read_manifest
from mint.errors import DataError

RATE = 16000


def _tone(path: Path, frames: int = 1600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(np.arange(frames) / 5.0), RATE)
    return path


def test_jsonl_is_validated_rechecked_and_filtered_by_split(tmp_path):
    _tone(tmp_path / "clips" / "a.wav", frames=800)
    _tone(tmp_path / "clips" / "b.ogg", frames=2400)
    lines = [
        {"id": "a", "audio": "clips/a.wav", "captions": ["a hum"], "split": "train", "duration": 99.0},
        {"id": "b", "audio": str(tmp_path / "clips" / "b.ogg"), "labels": ["tone"], "split": "train"},
        {"id": "c", "audio": "clips/gone.wav", "split": "train"},
        {"id": "d", "audio": "clips/a.wav", "split": "test"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out" / "train.jsonl"
    report = prepare("jsonl", source, out, split="train")
    records = {record.id: record for record in read_manifest(out)}
    assert sorted(records) == ["a", "b"]
    # The stale duration in the input is replaced by the file's.
    assert records["a"].duration == pytest.approx(800 / RATE)
    assert records["b"].duration == pytest.approx(2400 / RATE, abs=1e-3)
    assert records["a"].captions == ["a hum"] and records["b"].labels == ["tone"]
    assert Path(records["a"].audio) == (tmp_path / "clips" / "a.wav").resolve()
    assert [(skip.name, skip.reason) for skip in report.skipped] == [("clips/gone.wav", "file not found")]


def test_jsonl_bad_line_is_reported_with_its_number(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "audio": "a.wav"}\n{"id": "b", "audio": "b.wav", "colour": "red"}\n')
    with pytest.raises(DataError, match=r"in\.jsonl:2: unknown field\(s\) \['colour'\]"):
        prepare("jsonl", source, tmp_path / "out.jsonl")


def test_csv_groups_rows_per_audio_file(tmp_path):
    _tone(tmp_path / "data" / "x.wav")
    _tone(tmp_path / "data" / "sub" / "y.flac", frames=400)
    table = tmp_path / "data" / "list.csv"
    table.write_text(
        "audio,caption,label,fold\n"
        "x.wav,a low hum,hum,2\n"
        "sub/y.flac,a short beep,beep,1\n"
        "x.wav,a steady hum,hum,2\n"
        "x.wav,,drone,2\n"
        "missing.wav,nothing,silence,1\n"
    )
    out = tmp_path / "csv.jsonl"
    report = prepare("csv", table, out)
    records = {record.id: record for record in read_manifest(out)}
    assert sorted(records) == ["sub/y", "x"]
    assert records["x"].captions == ["a low hum", "a steady hum"]
    assert records["x"].labels == ["hum", "drone"] and records["x"].fold == 2
    assert records["sub/y"].captions == ["a short beep"] and records["sub/y"].duration == pytest.approx(
        400 / RATE
    )
    assert [(skip.name, skip.reason) for skip in report.skipped] == [("missing.wav", "file not found")]

    prepare("csv", table, tmp_path / "fold1.jsonl", folds={1})
    assert [record.id for record in read_manifest(tmp_path / "fold1.jsonl")] == ["sub/y"]


def test_csv_id_and_split_columns(tmp_path):
    _tone(tmp_path / "one.wav")
    _tone(tmp_path / "two.wav")
    table = tmp_path / "t.csv"
    table.write_text("id,audio,label,split\nclip-1,one.wav,dog,train\nclip-2,two.wav,cat,test\n")
    prepare("csv", table, tmp_path / "test.jsonl", split="test")
    records = read_manifest(tmp_path / "test.jsonl")
    assert [(record.id, record.labels, record.split) for record in records] == [("clip-2", ["cat"], "test")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("audio,caption\na.wav,hi,extra\n", "line 2: row has more than the header's 2 fields"),
        ("audio,caption,label\na.wav,hi\n", "line 2: row has fewer than the header's 3 fields"),
        (
            "audio,caption,fold\na.wav,hi,1\nb.wav,ho,one\n",
            "line 3: column 'fold' must be an integer, got 'one'",
        ),
        ("audio,caption\n,hi\n", "line 2: column 'audio' is empty"),
        ("audio,caption,label\na.wav,,\n", "line 2: both 'caption' and 'label' are empty"),
        ("file,caption\na.wav,hi\n", "line 1: missing column(s) audio"),
        ("audio,text\na.wav,hi\n", "line 1: missing column(s) caption or label"),
        ("", "empty file"),
    ],
)
def test_malformed_csv_names_file_row_and_expected_columns(tmp_path, content, message):
    table = tmp_path / "bad.csv"
    table.write_text(content)
    with pytest.raises(DataError) as caught:
        prepare("csv", table, tmp_path / "out.jsonl")
    text = str(caught.value)
    assert text.startswith(str(table)) and message in text
    assert "audio" in text.split("expected", 1)[1]
    assert not (tmp_path / "out.jsonl").exists()
