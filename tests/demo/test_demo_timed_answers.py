"""Timed answers ("when does the siren start?") scored by the error of the time they give, on canned
answers worked by hand."""

from __future__ import annotations

import math

import pytest

from mint.data.manifest import ManifestRecord, QAPair
from mint.demo import evaluate


def _record(index: int, pairs: list[tuple[str, str]]) -> ManifestRecord:
    return ManifestRecord(id=f"clip{index}", audio=f"clip{index}.wav", qa=[QAPair(q, a) for q, a in pairs])


START = "when does the siren start?"
END = "when does the bell end?"


def test_timed_answers_score_the_time_given_against_the_training_median(monkeypatch):
    train = [
        _record(0, [(START, "at 1.0 seconds"), ("how many sounds are there?", "two")]),
        _record(1, [(START, "at 2.0 seconds")]),
        _record(2, [(START, "at 4.0 seconds"), (END, "at 2.5 seconds")]),
    ]
    test = [
        _record(3, [(START, "at 1.2 seconds"), ("how many sounds are there?", "one")]),
        _record(4, [(START, "at 0.5 seconds"), (END, "at 1.0 seconds")]),
        _record(5, [("what is the sound?", "bell")]),
    ]
    answers = {
        (START, "clip3"): "at 1.0 seconds",  # 0.2 s off
        (START, "clip4"): "a siren",  # no time at all: infinitely wrong
        (END, "clip4"): "1.5 s",  # 0.5 s off
    }
    monkeypatch.setattr(
        evaluate,
        "_answers",
        lambda model, rows, *a: [answers[(pair.question, record.id)] for record, pair in rows],
    )
    result = evaluate.timed_answers(None, test, train, progress=False)
    assert result["questions"] == 3 and result["unparsed"] == 1
    # Errors 0.2, inf, 0.5: median 0.5, two of three within 1 s.
    assert result["model"]["median_error_s"] == pytest.approx(0.5)
    assert result["model"]["within_1s"] == pytest.approx(2 / 3)
    # Baseline: the start question's training median is 2.0 s (errors 0.8 and 1.5), the end question's 2.5 s
    # (error 1.5): median 1.5, one of three within 1 s.
    baseline = result["baseline_median_training_time"]
    assert baseline["median_error_s"] == pytest.approx(1.5) and baseline["within_1s"] == pytest.approx(1 / 3)


def test_word_questions_leave_timed_ones_to_their_own_score(monkeypatch):
    test = [_record(0, [(START, "at 1.2 seconds"), ("how many sounds are there?", "one")])]
    seen = []
    monkeypatch.setattr(
        evaluate, "_answers", lambda model, rows, *a: seen.extend(rows) or ["one"] * len(rows)
    )
    result = evaluate.question_answering(None, test, test, progress=False)
    assert [pair.question for _, pair in seen] == ["how many sounds are there?"]
    assert result["questions"] == 1 and result["accuracy"] == 1.0


def test_every_answer_without_a_time_has_no_median():
    assert evaluate._time_errors([math.inf, math.inf, 0.1])["median_error_s"] is None
