"""PTB tokenisation, tool discovery, SPICE configuration and the JSON-lines caption reader."""

from __future__ import annotations

import json
import re

import pytest

from mint.errors import DataError, MintError
from mint.evaluation.metrics import (
    caption_metrics_from_jsonl,
    compute_caption_metrics,
    meteor,
    ptb_tokenize,
    spice,
)
from mint.evaluation.metrics.spice import SPICE_UNAVAILABLE

needs_java = pytest.mark.usefixtures("java")


@needs_java
def test_ptb_tokenize_follows_the_reference_rules() -> None:
    texts = ["A dog barks.\nLoudly!", '(Cat) meows -- twice, "softly"', "", "Add 2 1/2 cups; don't stir"]
    assert ptb_tokenize(texts) == [
        # A line break inside a caption must not split it: the tokenizer works line by line.
        "a dog barks loudly",
        # The reference drops "-LRB-"/"-RRB-" only in upper case, after lowercasing, so they stay.
        "-lrb- cat -rrb- meows twice softly",
        "",
        # The tokenizer joins "2 1/2" with U+00A0, which stays inside the token as in the reference.
        "add 2\u00a01/2 cups do n't stir",
    ]


def test_ptb_tokenize_of_nothing_runs_nothing() -> None:
    assert ptb_tokenize([]) == []


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MintError, match="'java' executable was not found"):
        ptb_tokenize(["a dog barks"])
    with pytest.raises(MintError, match="'java' executable was not found"):
        meteor(["a dog barks"], [["a dog is barking"]])


def test_spice_without_a_jar_or_its_corenlp_jars_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(MintError, match="not a file"):
        spice(["a dog"], [["a dog"]], tmp_path / "spice-1.0.jar")
    jar = tmp_path / "spice-1.0.jar"
    jar.write_bytes(b"")
    with pytest.raises(
        MintError, match=re.escape("stanford-corenlp-3.6.0.jar, stanford-corenlp-3.6.0-models.jar")
    ):
        spice(["a dog"], [["a dog"]], jar)
    # compute_caption_metrics checks the configured jar before any scoring starts.
    with pytest.raises(MintError, match=re.escape("stanford-corenlp-3.6.0")):
        compute_caption_metrics({"x": "a dog"}, {"x": ["a dog"]}, spice_jar=jar)


def test_spice_unavailable_reason_says_what_to_set() -> None:
    assert SPICE_UNAVAILABLE.startswith("SPICE unavailable: set spice_jar")


def test_compute_caption_metrics_rejects_mismatched_ids() -> None:
    with pytest.raises(DataError, match="without references: \\['b'\\]"):
        compute_caption_metrics({"a": "x", "b": "y"}, {"a": ["x"]})
    with pytest.raises(DataError, match="references\\['a'\\] must be a non-empty list"):
        compute_caption_metrics({"a": "x"}, {"a": []})
    with pytest.raises(DataError, match="candidates is empty"):
        compute_caption_metrics({}, {})


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "b", "candidate": "a cat"}', "missing field\\(s\\) references"),
        ('{"id": "b", "candidate": 3, "references": ["a cat"]}', "field 'candidate' must be a string"),
        (
            '{"id": "b", "candidate": "a cat", "references": "a cat"}',
            "field 'references' must be a non-empty",
        ),
        ('{"id": "b", "candidate": "a cat", "references": []}', "field 'references' must be a non-empty"),
        ('{"id": null, "candidate": "a cat", "references": ["a cat"]}', "field 'id' must be"),
        ('{"id": "a", "candidate": "a cat", "references": ["a cat"]}', "id 'a' appears more than once"),
    ],
)
def test_jsonl_errors_name_the_file_and_line(tmp_path, second_line: str, message: str) -> None:
    path = tmp_path / "captions.jsonl"
    first = json.dumps({"id": "a", "candidate": "a dog", "references": ["a dog barks"]})
    path.write_text(f"{first}\n\n{second_line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: ") + message):
        caption_metrics_from_jsonl(path)


def test_jsonl_without_records_or_file_is_a_data_error(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no records"):
        caption_metrics_from_jsonl(empty)
    with pytest.raises(DataError, match="cannot read"):
        caption_metrics_from_jsonl(tmp_path / "missing.jsonl")
