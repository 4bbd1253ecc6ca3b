"""Loaders of captioned layouts (AudioCaps, Clotho, WavCaps) through `prepare`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.data.loaders import prepare
from mint.data.manifest import read_manifest
from mint.errors import DataError
from mint_testing import AUDIOCAPS_CAPTIONS, require_shared

RATE = 16000


def _tone(path: Path, frames: int = 1600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(np.arange(frames) / 7.0), RATE)
    return path


def _by_id(path: Path) -> dict:
    return {record.id: record for record in read_manifest(path)}


def test_audiocaps_groups_captions_and_matches_file_names(tmp_path):
    root = tmp_path / "audiocaps"
    root.mkdir()
    # YouTube ids may start with "Y" and contain "_" or "-", which file-name parsing would trip on.
    (root / "test.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "1,Yab_cd-EF12,30,a dog barks\n"
        '2,Yab_cd-EF12,30,"a dog barks, then a car passes"\n'
        "3,zz9-aaaa_bb,0,rain falls\n"
        "4,Yab_cd-EF12,30,a dog barks twice\n"
        "5,q1w2e3r4t5y,120,wind blows\n"
        "6,nofile00000,10,silence\n"
    )
    (root / "val.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n7,mp3clip0000,20,a bell rings\n"
    )
    _tone(root / "audio" / "test" / "YYab_cd-EF12.wav")
    _tone(root / "audio" / "test" / "zz9-aaaa_bb_0.flac", frames=800)
    _tone(root / "audio" / "test" / "Yq1w2e3r4t5y_120.000_130.000.ogg")
    _tone(root / "audio" / "val" / "mp3clip0000_20.mp3")
    out = tmp_path / "audiocaps.jsonl"
    report = prepare("audiocaps", root, out)
    records = _by_id(out)
    assert sorted(records) == ["Yab_cd-EF12_30", "mp3clip0000_20", "q1w2e3r4t5y_120", "zz9-aaaa_bb_0"]
    assert records["Yab_cd-EF12_30"].captions == [
        "a dog barks",
        "a dog barks, then a car passes",
        "a dog barks twice",
    ]
    assert Path(records["Yab_cd-EF12_30"].audio).name == "YYab_cd-EF12.wav"
    assert Path(records["zz9-aaaa_bb_0"].audio).suffix == ".flac"
    assert records["zz9-aaaa_bb_0"].duration == pytest.approx(800 / RATE)
    assert records["mp3clip0000_20"].split == "val" and records["q1w2e3r4t5y_120"].split == "test"
    assert [(skip.name, skip.reason) for skip in report.skipped] == [
        ("nofile00000_10", "no audio file for id")
    ]

    prepare("audiocaps", root, tmp_path / "val.jsonl", split="val")
    assert list(_by_id(tmp_path / "val.jsonl")) == ["mp3clip0000_20"]


def test_audiocaps_real_test_table_has_five_captions_per_clip(tmp_path):
    table = require_shared(AUDIOCAPS_CAPTIONS / "test.csv")
    expected: dict[tuple[str, str], list[str]] = {}
    with table.open(newline="") as handle:
        for row in csv.DictReader(handle):
            expected.setdefault((row["youtube_id"], row["start_time"]), []).append(row["caption"])
    chosen = list(expected)[:3]
    for youtube_id, start in chosen:
        _tone(tmp_path / "audio" / f"{youtube_id}_{start}.wav")
    out = tmp_path / "test.jsonl"
    report = prepare("audiocaps", table, out, audio_dir=tmp_path / "audio")
    records = _by_id(out)
    assert report.written == 3
    assert len(report.skipped) == len(expected) - 3
    for youtube_id, start in chosen:
        record = records[f"{youtube_id}_{start}"]
        assert record.captions == expected[(youtube_id, start)] and len(record.captions) == 5
        assert record.split == "test"


def test_clotho_splits_captions_and_missing_file(tmp_path):
    root = tmp_path / "clotho"
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    root.mkdir()
    (root / "clotho_captions_development.csv").write_text(
        header + "Forest birds.wav,birds sing,birds chirp , ,many birds,a bird\nmissing clip.wav,a,b,c,d,e\n"
    )
    (root / "clotho_captions_evaluation.csv").write_text(
        header + "Forest birds.wav,one,two,three,four,five\n"
    )
    _tone(root / "development" / "Forest birds.wav", frames=1600)
    _tone(root / "evaluation" / "Forest birds.wav", frames=3200)

    out = tmp_path / "dev.jsonl"
    report = prepare("clotho", root, out, split="development")
    records = _by_id(out)
    assert list(records) == ["Forest birds"]
    assert records["Forest birds"].captions == ["birds sing", "birds chirp", "many birds", "a bird"]
    assert records["Forest birds"].duration == pytest.approx(1600 / RATE)
    assert [(skip.name, skip.reason) for skip in report.skipped] == [("missing clip.wav", "file not found")]

    prepare("clotho", root, tmp_path / "eval.jsonl", split="evaluation")
    evaluation = _by_id(tmp_path / "eval.jsonl")["Forest birds"]
    assert evaluation.captions == ["one", "two", "three", "four", "five"]
    assert evaluation.duration == pytest.approx(3200 / RATE) and evaluation.split == "evaluation"

    # Both splits at once hold the same file name twice, which a manifest cannot.
    with pytest.raises(DataError, match="occurs twice"):
        prepare("clotho", root, tmp_path / "both.jsonl")


def test_clotho_missing_caption_column(tmp_path):
    table = tmp_path / "clotho_captions_development.csv"
    table.write_text("file_name,text\na.wav,hello\n")
    with pytest.raises(DataError) as caught:
        prepare("clotho", table, tmp_path / "x.jsonl")
    message = str(caught.value)
    assert f"{table}, line 1: missing column(s) caption_1" in message
    assert "expected columns: file_name, caption_1" in message


def test_wavcaps_ids_captions_and_explicit_paths(tmp_path):
    root = tmp_path / "wavcaps"
    data = {
        "data": [
            {"id": "Yb0RFKhbpFJA.wav", "caption": "A man speaks.", "audio": "wav_path", "duration": 10.0},
            {"id": 180913, "description": "Rain on a roof", "audio": "fsd/custom name.flac"},
            {"id": "missing01", "caption": "Nothing here"},
        ]
    }
    (root / "json_files" / "AudioSet_SL").mkdir(parents=True)
    (root / "json_files" / "AudioSet_SL" / "as_final.json").write_text(json.dumps(data))
    _tone(root / "AudioSet_SL" / "Yb0RFKhbpFJA.flac", frames=1200)
    _tone(root / "other" / "Yb0RFKhbpFJA.flac")
    _tone(root / "fsd" / "custom name.flac", frames=2000)
    out = tmp_path / "wavcaps.jsonl"
    report = prepare("wavcaps", root, out)
    records = _by_id(out)
    assert sorted(records) == ["180913", "Yb0RFKhbpFJA"]
    assert records["Yb0RFKhbpFJA"].captions == ["A man speaks."]
    # The file under the folder named like the JSON's subset wins over a namesake elsewhere.
    assert Path(records["Yb0RFKhbpFJA"].audio).parent.name == "AudioSet_SL"
    assert records["Yb0RFKhbpFJA"].duration == pytest.approx(1200 / RATE)
    assert records["180913"].captions == ["Rain on a roof"]
    assert Path(records["180913"].audio).name == "custom name.flac"
    assert [(skip.name, skip.reason) for skip in report.skipped] == [("missing01", "no audio file for id")]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"items": []}', 'expected a JSON object {"data": [...]}'),
        ('{"data": [{"id": "a", "caption": "x"}, {"id": "b"}]}', "entry 1: no non-empty 'caption' or"),
        ('{"data": [{"caption": "x"}]}', "entry 0: no non-empty 'id' field"),
        (
            '{"data": [{"id": "a", "caption": "x"}, {"id": "a.wav", "caption": "y"}]}',
            "entry 1: id 'a' appears",
        ),
        ('{"data": [', "line 1: not valid JSON"),
    ],
)
def test_wavcaps_malformed_json_names_file_and_entry(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(document)
    with pytest.raises(DataError) as caught:
        prepare("wavcaps", path, tmp_path / "x.jsonl")
    assert str(path) in str(caught.value) and message in str(caught.value)
