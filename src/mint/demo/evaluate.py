"""The demo's held-out evaluation: the standard runners plus QA accuracy and trivial baselines."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mint.audio.frontend import AudioFrontend, FrontendConfig, pad_batch
from mint.data.instructions import evaluation_instruction
from mint.data.manifest import ManifestRecord, QAPair, read_manifest
from mint.data.sequences import FORMS, SequenceExample, draw_parts, sequence_example, sequence_forms
from mint.data.sources import Clip
from mint.data.synth.speech import WORDS
from mint.data.synth.text import WORD_QUESTIONS, parse_seconds
from mint.evaluation.captioning import CaptionOptions, run_captioning
from mint.evaluation.classify import ClassifyOptions, run_classification
from mint.evaluation.metrics import compute_caption_metrics
from mint.evaluation.retrieve import RetrieveOptions, calibrate_rerank, run_retrieval
from mint.evaluation.temporal import TemporalOptions, run_temporal
from mint.inference.pipeline import MintPipeline
from mint.modeling import MintModel
from mint.modeling.saved import read_saved_config

TIME_TOLERANCE_S = 1.0


def normalise_answer(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def majority_answers(train: list[ManifestRecord]) -> dict[str, str]:
    """The most frequent training answer of each question: the trivial baseline QA must beat."""
    counts: dict[str, Counter] = {}
    for record in train:
        for pair in record.qa:
            counts.setdefault(pair.question, Counter())[normalise_answer(pair.answer)] += 1
    return {question: counter.most_common(1)[0][0] for question, counter in counts.items()}


def is_timed(pair: QAPair) -> bool:
    """A question answered with a time ("when does the siren start?" -> "at 0.4 seconds")."""
    return parse_seconds(pair.answer) is not None


@torch.no_grad()
def _generate_answers(
    model: MintModel,
    rows: list[tuple[list[ManifestRecord], str]],
    batch_size: int,
    max_new_tokens: int,
    progress: bool,
    desc: str,
) -> list[str]:
    """Greedy answers to each (clips, question) row; a row of several clips is read as their windows."""
    model.eval()
    frontend = AudioFrontend(
        FrontendConfig(sample_rate=model.sample_rate, max_seconds=model.config.max_audio_seconds)
    )
    answers: list[str] = []
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, disable=not progress):
        chunk = rows[start : start + batch_size]
        waveforms, lengths = pad_batch(
            [frontend.load(record.audio) for parts, _ in chunk for record in parts]
        )
        windows = [len(parts) for parts, _ in chunk]
        answers += model.generate(
            model.encode_audio(waveforms, lengths),
            [evaluation_instruction("qa", question=question) for _, question in chunk],
            windows=windows if max(windows) > 1 else None,
            max_new_tokens=max_new_tokens,
        )
    return answers


def _answers(
    model: MintModel,
    rows: list[tuple[ManifestRecord, QAPair]],
    batch_size: int,
    max_new_tokens: int,
    progress: bool,
) -> list[str]:
    """Greedy answers to each (clip, question) row."""
    questions = [([record], pair.question) for record, pair in rows]
    return _generate_answers(model, questions, batch_size, max_new_tokens, progress, "question answering")


def _example(record: ManifestRecord, pair: QAPair, answer: str) -> dict:
    return {"id": record.id, "question": pair.question, "answer": answer, "expected": pair.answer}


def question_answering(
    model: MintModel,
    test: list[ManifestRecord],
    train: list[ManifestRecord],
    batch_size: int = 32,
    max_new_tokens: int = 8,
    progress: bool = True,
    questions: Collection[str] | None = None,
) -> dict:
    """Exact-match accuracy (after lower-casing and dropping punctuation) of greedy answers, over every
    question of the test clips answered with words, or only those in `questions` (timed questions are
    scored by `timed_answers`)."""
    majority = majority_answers(train)
    rows = [
        (record, pair)
        for record in test
        for pair in record.qa
        if (pair.question in questions if questions is not None else not is_timed(pair))
    ]
    correct = baseline = 0
    examples = []
    for (record, pair), answer in zip(
        rows, _answers(model, rows, batch_size, max_new_tokens, progress), strict=True
    ):
        expected = normalise_answer(pair.answer)
        correct += normalise_answer(answer) == expected
        baseline += majority.get(pair.question) == expected
        if len(examples) < 50:
            examples.append(_example(record, pair, answer))
    total = max(1, len(rows))
    return {
        "questions": len(rows),
        "accuracy": correct / total,
        "majority_baseline_accuracy": baseline / total,
        "examples": examples,
    }


def _time_errors(errors: list[float]) -> dict:
    values = np.array(errors, dtype=np.float64)
    median = float(np.median(values)) if values.size else None
    return {
        "median_error_s": median if median is not None and math.isfinite(median) else None,
        "within_1s": float(np.mean(values <= TIME_TOLERANCE_S)) if values.size else None,
    }


def timed_answers(
    model: MintModel,
    test: list[ManifestRecord],
    train: list[ManifestRecord],
    batch_size: int = 32,
    max_new_tokens: int = 8,
    progress: bool = True,
) -> dict:
    """Questions answered with a time ("when does the siren start?"): the error of the time the answer
    gives (`parse_seconds`; an answer without one is infinitely wrong), beside a baseline answering every
    question with its median time in training."""
    times: dict[str, list[float]] = {}
    for record in train:
        for pair in record.qa:
            if is_timed(pair):
                times.setdefault(pair.question, []).append(parse_seconds(pair.answer))
    medians = {question: float(np.median(seen)) for question, seen in times.items()}
    rows = [(record, pair) for record in test for pair in record.qa if is_timed(pair)]
    errors, baseline, examples = [], [], []
    for (record, pair), answer in zip(
        rows, _answers(model, rows, batch_size, max_new_tokens, progress), strict=True
    ):
        expected, given = parse_seconds(pair.answer), parse_seconds(answer)
        errors.append(math.inf if given is None else abs(given - expected))
        baseline.append(abs(medians[pair.question] - expected) if pair.question in medians else math.inf)
        if len(examples) < 20:
            examples.append(_example(record, pair, answer))
    return {
        "questions": len(rows),
        "unparsed": sum(math.isinf(error) for error in errors),
        "model": _time_errors(errors),
        "baseline_median_training_time": _time_errors(baseline),
        "examples": examples,
    }


# Forms with one right answer; "describe_part" answers with a caption.
SCORED_FORMS = tuple(form for form in FORMS if form != "describe_part")


def _sequences(
    records: list[ManifestRecord],
    vocabulary: list[str],
    items: int,
    windows: int,
    rng: np.random.Generator,
) -> list[tuple[list[ManifestRecord], SequenceExample]]:
    """Up to `items` questions with one right answer about 2 to `windows` of `records` read in order as
    one recording, drawn as stage 2's `sequence` items are."""
    rows = []
    for _ in range(items):
        anchor = int(rng.integers(len(records)))
        parts = [records[index] for index in draw_parts(len(records), anchor, windows, rng)]
        clips = [Clip.from_record(record) for record in parts]
        if sequence_forms(clips):
            example = sequence_example(clips, vocabulary, rng)
            if example.form in SCORED_FORMS:
                rows.append((parts, example))
    return rows


def sequence_answers(
    model: MintModel,
    test: list[ManifestRecord],
    train: list[ManifestRecord],
    items: int,
    windows: int,
    seed: int,
    batch_size: int = 16,
    max_new_tokens: int = 24,
    progress: bool = True,
) -> dict:
    """Held-out scenes read as the consecutive windows of one recording (`mint.data.sequences`, as stage 2's
    `sequence` items): exact match of greedy answers per question form, beside the answer most often
    right for the form over 2,000 such questions drawn from the training scenes."""
    vocabulary = sorted({label for record in train for label in record.labels})
    rng = np.random.default_rng([seed, 20])
    drawn: dict[str, Counter] = {form: Counter() for form in SCORED_FORMS}
    for _, example in _sequences(train, vocabulary, 2000, windows, rng):
        drawn[example.form][normalise_answer(example.answer)] += 1
    majority = {form: counts.most_common(1)[0][0] if counts else None for form, counts in drawn.items()}
    rows = _sequences(test, vocabulary, items, windows, rng)
    answers = _generate_answers(
        model,
        [(parts, example.question) for parts, example in rows],
        batch_size,
        max_new_tokens,
        progress,
        "sequence questions",
    )
    forms: dict[str, dict] = {}
    examples = []
    for (parts, example), answer in zip(rows, answers, strict=True):
        expected = normalise_answer(example.answer)
        counts = forms.setdefault(example.form, {"questions": 0, "correct": 0, "baseline": 0})
        counts["questions"] += 1
        counts["correct"] += normalise_answer(answer) == expected
        counts["baseline"] += majority[example.form] == expected
        if len(examples) < 20:
            examples.append(
                {
                    "ids": [record.id for record in parts],
                    "question": example.question,
                    "answer": answer,
                    "expected": example.answer,
                }
            )
    total = max(1, len(rows))
    return {
        "questions": len(rows),
        "accuracy": sum(form["correct"] for form in forms.values()) / total,
        "majority_baseline_accuracy": sum(form["baseline"] for form in forms.values()) / total,
        "forms": {
            name: {
                "questions": form["questions"],
                "accuracy": form["correct"] / form["questions"],
                "majority_baseline_accuracy": form["baseline"] / form["questions"],
            }
            for name, form in forms.items()
        },
        "examples": examples,
    }


def random_caption_baseline(test: list[ManifestRecord], seed: int) -> dict:
    """Caption metrics of a caption drawn from a random *other* clip, scored like a prediction."""
    rng = random.Random(seed)
    candidates, references = {}, {}
    for index, record in enumerate(test):
        other = rng.choice([i for i in range(len(test)) if i != index])
        candidates[record.id] = rng.choice(test[other].captions)
        references[record.id] = record.captions
    return compute_caption_metrics(candidates, references)


def _calibrated(validation: Path, stage1_dir: Path, out: Path, options: RetrieveOptions) -> dict:
    """The re-ranking calibration's results: run once and saved with the stage-1 model, read back after."""
    saved = out / "results.json"
    if saved.is_file() and read_saved_config(stage1_dir).rerank_weight is not None:
        return json.loads(saved.read_text())
    return calibrate_rerank(validation, stage1_dir, out, options)


def evaluate_demo(
    stage1_dir: Path,
    model_dir: Path,
    scenes_test: Path,
    scenes_train: Path,
    single_test: Path,
    speech_test: Path | None,
    validation: Path | None,
    long_test: Path | None,
    out: Path,
    retrieval_k: int,
    caption_beams: int,
    max_new_tokens: int,
    qa_clips: int,
    seed: int,
    progress: bool = True,
    sequence_items: int = 0,
    sequence_windows: int = 4,
) -> dict:
    """ATC classification and retrieval use the stage-1 model (as BLIP-2 evaluates them); the
    generative tasks use the instruction-tuned one. With a `validation` manifest the ATM re-ranking weight
    is chosen on it first and saved with the stage-1 model, so that retrieval on the test scenes uses it.
    `long_test`: long recordings with timed events, for onset error and long-recording retrieval.
    `sequence_items`: questions about held-out scenes read as the windows of one recording."""
    train, test = read_manifest(scenes_train), read_manifest(scenes_test)
    retrieve_options = RetrieveOptions(k=retrieval_k, progress=progress)
    calibration = None
    if validation is not None:
        calibration = _calibrated(validation, stage1_dir, out / "rerank-calibration", retrieve_options)
    results = {
        "classify_atc": run_classification(
            single_test, stage1_dir, out / "classify-atc", ClassifyOptions(method="atc", progress=progress)
        ),
        "classify_generative": run_classification(
            single_test,
            model_dir,
            out / "classify-generative",
            ClassifyOptions(method="generative", progress=progress),
        ),
        "rerank_calibration": calibration,
        "retrieval": run_retrieval(scenes_test, stage1_dir, out / "retrieval", retrieve_options),
        "captioning": run_captioning(
            scenes_test,
            model_dir,
            out / "captioning",
            CaptionOptions(num_beams=caption_beams, max_new_tokens=max_new_tokens, progress=progress),
        ),
        "captioning_random_baseline": random_caption_baseline(test, seed),
    }
    if long_test is not None:
        results["temporal"] = run_temporal(
            long_test, stage1_dir, out / "temporal", TemporalOptions(progress=progress)
        )
    model = MintModel.from_pretrained(model_dir)
    results["qa"] = question_answering(model, test[:qa_clips], train, progress=progress)
    if sequence_items > 0:
        results["sequence_qa"] = sequence_answers(
            model, test, train, sequence_items, sequence_windows, seed, progress=progress
        )
    if any(is_timed(pair) for record in test[:qa_clips] for pair in record.qa):
        results["timed_qa"] = timed_answers(model, test[:qa_clips], train, progress=progress)
    if speech_test is not None:
        # Voices that training never heard; the chance level is one word of the vocabulary.
        spoken = question_answering(
            model, read_manifest(speech_test), train, progress=progress, questions=WORD_QUESTIONS
        )
        results["spoken_words"] = {**spoken, "chance": 1 / len(WORDS)}
    if long_test is not None:
        results["timeline_example"] = timeline_example(model, read_manifest(long_test)[0])
    return results


TIMELINE_SEGMENTS = 8


def timeline_example(model: MintModel, record: ManifestRecord) -> dict:
    """One long recording's timeline (`MintPipeline.caption_segments`), each segment beside the events
    that are really in it."""
    segments = MintPipeline(model).caption_segments(record.audio, TIMELINE_SEGMENTS, max_new_tokens=24)
    return {
        "id": record.id,
        "events": len(record.events),
        "segments": [
            {
                "start": part.start,
                "end": part.end,
                "caption": part.text,
                "events": [
                    event.label
                    for event in record.events
                    if event.onset < part.end and event.offset > part.start
                ],
            }
            for part in segments
        ],
    }
