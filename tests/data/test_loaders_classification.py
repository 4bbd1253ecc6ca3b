"""Loaders of labelled layouts (ESC-50/ESC-10, UrbanSound8K, a folder per class) through `prepare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.data.loaders import prepare
from mint.data.manifest import read_manifest
from mint.errors import DataError

RATE = 16000


def _tone(path: Path, frames: int = 1600, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(frames) / RATE
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, RATE)
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all" * 8)
    return path


@pytest.fixture
def esc50_root(tmp_path: Path) -> Path:
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A.wav,1,0,dog,True,100032,A\n"
        "1-100038-A.wav,1,14,chirping_birds,False,100038,A\n"
        "2-109505-A.wav,2,1,rooster,True,109505,A\n"
        "3-102908-A.wav,3,1,rooster,True,102908,A\n"
        "4-110123-A.wav,4,14,chirping_birds,False,110123,A\n"
    )
    _tone(root / "audio" / "1-100032-A.wav", frames=1600)
    _tone(root / "audio" / "1-100038-A.wav", frames=3200, channels=2)
    _tone(root / "audio" / "2-109505-A.wav", frames=800)
    _corrupt(root / "audio" / "3-102908-A.wav")
    # 4-110123-A.wav is listed but absent.
    return root


def test_esc50_records_labels_folds_and_durations(esc50_root, tmp_path):
    out = tmp_path / "esc50.jsonl"
    report = prepare("esc50", esc50_root, out)
    records = {record.id: record for record in read_manifest(out)}
    assert report.written == 3 == len(records)
    assert records["1-100032-A"].labels == ["dog"] and records["1-100032-A"].fold == 1
    assert records["1-100038-A"].labels == ["chirping_birds"]
    assert records["2-109505-A"].labels == ["rooster"] and records["2-109505-A"].fold == 2
    assert records["1-100032-A"].duration == pytest.approx(1600 / RATE)
    assert records["1-100038-A"].duration == pytest.approx(3200 / RATE)
    assert Path(records["2-109505-A"].audio) == (esc50_root / "audio" / "2-109505-A.wav").resolve()
    assert {record.source for record in records.values()} == {"esc50"}

    reasons = {skip.name: skip.reason for skip in report.skipped}
    assert reasons == {"audio/3-102908-A.wav": "unreadable audio", "audio/4-110123-A.wav": "file not found"}


def test_esc10_keeps_flagged_rows_and_folds_filter(esc50_root, tmp_path):
    report = prepare("esc10", esc50_root, tmp_path / "esc10.jsonl")
    ids = [record.id for record in read_manifest(tmp_path / "esc10.jsonl")]
    assert ids == ["1-100032-A", "2-109505-A"]
    assert [skip.name for skip in report.skipped] == ["audio/3-102908-A.wav"]

    prepare("esc50", esc50_root, tmp_path / "fold1.jsonl", folds={1})
    assert {record.fold for record in read_manifest(tmp_path / "fold1.jsonl")} == {1}
    assert len(read_manifest(tmp_path / "fold1.jsonl")) == 2


def test_esc50_table_given_directly_and_no_check_audio(esc50_root, tmp_path):
    out = tmp_path / "direct.jsonl"
    report = prepare("esc50", esc50_root / "meta" / "esc50.csv", out, check_audio=False)
    records = read_manifest(out)
    # Without the audio check the corrupt file passes (it exists); the absent one still does not.
    assert report.written == 4
    assert [skip.reason for skip in report.skipped] == ["file not found"]
    assert all(record.duration is None for record in records)


def test_esc50_bad_fold_names_file_row_and_columns(esc50_root, tmp_path):
    table = esc50_root / "meta" / "esc50.csv"
    lines = table.read_text().splitlines()
    lines[3] = "2-109505-A.wav,two,1,rooster,True,109505,A"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        prepare("esc50", esc50_root, tmp_path / "x.jsonl")
    message = str(caught.value)
    assert str(table) in message and "line 4" in message and "'fold'" in message
    assert "filename, fold, target, category" in message
    assert not (tmp_path / "x.jsonl").exists()


def test_urbansound8k_reads_fold_folders(tmp_path):
    root = tmp_path / "UrbanSound8K"
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317,1,5,3,dog_bark\n"
        "100263-2-0-117.wav,100263,58.5,62.5,1,1,2,children_playing\n"
        "101281-3-0-0.wav,101281,0.0,1.0,1,2,3,dog_bark\n"
    )
    _tone(root / "audio" / "fold5" / "100032-3-0-0.wav")
    _tone(root / "audio" / "fold1" / "100263-2-0-117.wav", frames=2400)
    # The third clip sits in the wrong fold folder, so it is not found.
    _tone(root / "audio" / "fold1" / "101281-3-0-0.wav")
    out = tmp_path / "us8k.jsonl"
    report = prepare("urbansound8k", root, out)
    records = {record.id: record for record in read_manifest(out)}
    assert sorted(records) == ["100032-3-0-0", "100263-2-0-117"]
    assert records["100032-3-0-0"].labels == ["dog_bark"] and records["100032-3-0-0"].fold == 5
    assert records["100263-2-0-117"].labels == ["children_playing"]
    assert records["100263-2-0-117"].duration == pytest.approx(2400 / RATE)
    assert [(skip.name, skip.reason) for skip in report.skipped] == [
        ("audio/fold2/101281-3-0-0.wav", "file not found")
    ]


def test_urbansound8k_missing_column_is_named(tmp_path):
    root = tmp_path / "us8k"
    (root / "metadata").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fold,class\na.wav,1,dog\n")
    with pytest.raises(DataError, match=r"UrbanSound8K\.csv, line 1: missing column\(s\) classID"):
        prepare("urbansound8k", root, tmp_path / "x.jsonl")


def test_folder_per_class(tmp_path):
    root = tmp_path / "classes"
    _tone(root / "dog" / "a.wav")
    _tone(root / "dog" / "b.flac", frames=400)
    _tone(root / "cat" / "c.ogg", frames=4000)
    (root / "cat" / "notes.txt").write_text("not audio")
    _corrupt(root / "cat" / "d.wav")
    out = tmp_path / "folder.jsonl"
    report = prepare("folder", root, out, split="train")
    records = {record.id: record for record in read_manifest(out)}
    assert sorted(records) == ["cat/c", "dog/a", "dog/b"]
    assert records["cat/c"].labels == ["cat"] and records["dog/b"].labels == ["dog"]
    assert {record.split for record in records.values()} == {"train"}
    assert records["cat/c"].duration == pytest.approx(4000 / RATE, abs=1e-3)
    assert [(skip.name, skip.reason) for skip in report.skipped] == [("cat/d.wav", "unreadable audio")]


def test_folds_on_a_layout_without_folds_is_an_error(tmp_path):
    _tone(tmp_path / "classes" / "dog" / "a.wav")
    with pytest.raises(DataError, match="has no fold"):
        prepare("folder", tmp_path / "classes", tmp_path / "x.jsonl", folds={1})
