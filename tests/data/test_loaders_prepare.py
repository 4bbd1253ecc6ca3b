"""`prepare`'s report and the `mint data prepare` command, including the real ESC-10 in shared/."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.cli.main import main
from mint.data.loaders import LOADERS, PrepareReport, Skip, prepare
from mint.data.manifest import read_manifest
from mint.errors import DataError
from mint_testing import ESC10, require_shared


def _needs_esc10() -> None:
    require_shared(ESC10 / "meta.csv")


def test_cli_prepares_the_shared_esc10(tmp_path, capsys):
    _needs_esc10()
    out = tmp_path / "tmp" / "esc10.jsonl"
    assert main(["data", "prepare", "esc50", str(ESC10), "--out", str(out)]) == 0
    records = read_manifest(out)
    assert len(records) == 400
    per_class = Counter(record.labels[0] for record in records)
    assert len(per_class) == 10 and set(per_class.values()) == {40}
    assert {record.fold for record in records} == {1, 2, 3, 4, 5}
    # The dataset's README: mostly 5.0 s, a few between 3.6 and 7.2 s.
    durations = [record.duration for record in records]
    assert all(3.5 < duration < 7.3 for duration in durations)
    assert sum(abs(duration - 5.0) < 0.01 for duration in durations) >= 380
    with (ESC10 / "meta.csv").open(newline="") as handle:
        table = {row["filename"]: row for row in csv.DictReader(handle)}
    for record in records:
        row = table[Path(record.audio).name]
        assert record.labels == [row["category"]] and record.fold == int(row["fold"])
    assert "wrote 400 records" in capsys.readouterr().out


def test_cli_folds_and_no_check_audio(tmp_path):
    _needs_esc10()
    out = tmp_path / "folds.jsonl"
    args = ["data", "prepare", "esc10", str(ESC10), "--out", str(out), "--folds", "1,3", "--no-check-audio"]
    assert main(args) == 0
    records = read_manifest(out)
    assert len(records) == 160 and {record.fold for record in records} == {1, 3}
    assert all(record.duration is None for record in records)


def test_cli_malformed_csv_exits_2_naming_file_and_row(tmp_path, capsys):
    root = tmp_path / "esc"
    (root / "audio").mkdir(parents=True)
    (root / "meta.csv").write_text("filename,fold,target,category\na.wav,1,0,dog\nb.wav,1,0\n")
    assert main(["data", "prepare", "esc50", str(root), "--out", str(tmp_path / "x.jsonl")]) == 2
    error = capsys.readouterr().err
    assert f"{root / 'meta.csv'}, line 3" in error and "filename, fold, target, category" in error


def test_cli_reports_skips_and_fails_when_nothing_is_written(tmp_path, capsys):
    root = tmp_path / "classes"
    (root / "dog").mkdir(parents=True)
    (root / "dog" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    assert main(["data", "prepare", "folder", str(root), "--out", str(tmp_path / "x.jsonl")]) == 1
    printed = capsys.readouterr().out
    assert "wrote 0 records" in printed and "unreadable audio: 1" in printed and "dog/broken.wav" in printed


def test_summary_counts_per_reason_and_truncates():
    skipped = [Skip(f"clip{index}.wav", "file not found") for index in range(7)]
    skipped.append(Skip("bad.wav", "unreadable audio", "corrupt WAV data"))
    report = PrepareReport("esc50", Path("/data"), Path("out.jsonl"), written=12, skipped=skipped)
    lines = report.summary(limit=3).splitlines()
    assert lines[0] == "wrote 12 records to out.jsonl (esc50 from /data)"
    assert lines[1] == "skipped 8 clips:"
    assert lines[2:7] == [
        "  file not found: 7",
        "    clip0.wav",
        "    clip1.wav",
        "    clip2.wav",
        "    ... and 4 more",
    ]
    assert lines[7:] == ["  unreadable audio: 1", "    bad.wav (corrupt WAV data)"]


def test_unknown_format_and_missing_root(tmp_path):
    with pytest.raises(DataError, match="unknown dataset format 'esc51'"):
        prepare("esc51", tmp_path, tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="no such file or folder"):
        prepare("esc50", tmp_path / "absent", tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="ESC-50 metadata CSV not found"):
        prepare("esc50", tmp_path, tmp_path / "x.jsonl")


def test_every_format_is_registered():
    expected = {"esc50", "esc10", "urbansound8k", "audiocaps", "clotho", "wavcaps", "jsonl", "csv", "folder"}
    assert set(LOADERS) == expected


def test_audio_written_next_to_the_manifest_is_stored_relative(tmp_path):
    (tmp_path / "classes" / "cat").mkdir(parents=True)
    sf.write(tmp_path / "classes" / "cat" / "a.wav", np.full(160, 0.1, dtype=np.float32), 16000)
    out = tmp_path / "manifest.jsonl"
    prepare("folder", tmp_path / "classes", out)
    assert '"audio": "classes/cat/a.wav"' in out.read_text()
