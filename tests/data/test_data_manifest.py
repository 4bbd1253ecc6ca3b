from __future__ import annotations

import json

import pytest

from mint.data.manifest import ManifestRecord, QAPair, read_manifest, write_manifest
from mint.errors import DataError


def test_round_trip_keeps_fields_and_relativises_paths(tmp_path):
    audio = tmp_path / "clips" / "a.wav"
    records = [
        ManifestRecord(id="a", audio=str(audio), captions=["a dog barks"], labels=["dog"], fold=2),
        ManifestRecord(id="b", audio="/elsewhere/b.wav", qa=[QAPair("how many?", "two")], duration=1.5),
    ]
    path = tmp_path / "train.jsonl"
    assert write_manifest(records, path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["audio"] == "clips/a.wav"
    assert "qa" not in lines[0] and lines[1]["qa"] == [{"question": "how many?", "answer": "two"}]
    back = read_manifest(path)
    assert back[0].audio == str(audio)
    assert back[0].captions == ["a dog barks"] and back[0].labels == ["dog"] and back[0].fold == 2
    assert back[1].audio == "/elsewhere/b.wav" and back[1].qa == [QAPair("how many?", "two")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "audio": "x.wav"', "not valid JSON"),
        ('{"id": "x"}', "missing required field 'audio'"),
        ('{"id": "x", "audio": "x.wav", "captions": "one"}', "'captions' must be a list of strings"),
        ('{"id": "x", "audio": "x.wav", "qa": [{"question": "q"}]}', "qa[0]"),
        ('{"id": "x", "audio": "x.wav", "colour": "red"}', "unknown field"),
        ('{"id": "x", "audio": "x.wav", "fold": "one"}', "'fold' must be an integer"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_line_is_reported_with_its_number(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "ok", "audio": "ok.wav"}\n\n' + line + "\n")
    with pytest.raises(DataError) as info:
        read_manifest(path)
    assert f"{path}:3" in str(info.value)
    assert message in str(info.value)


def test_duplicate_ids_and_missing_file(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "1.wav"}\n{"id": "a", "audio": "2.wav"}\n')
    with pytest.raises(DataError, match=r"m.jsonl:2: duplicate id 'a'"):
        read_manifest(path)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
