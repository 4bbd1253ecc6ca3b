"""Audio longer than the model's clip: windows through the pipeline and the CLI, against the plain path on a
clip within one window and against per-window recomputations."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.data.instructions import evaluation_instruction
from mint.inference import MintPipeline, build_index
from mint.inference.long_audio import prompt_runs
from mint.modeling.config import WindowingConfig
from mint.modeling.instruct import window_prompts

RATE = 16000
QUERY = "a dog barks in the rain"


@pytest.fixture(scope="module")
def pipeline(stage2_dir) -> MintPipeline:
    return MintPipeline.from_pretrained(stage2_dir, batch_size=3)


def _samples(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0]


def _learned_positions(model) -> torch.Tensor:
    """Give the model window-position embeddings as training would (the saved tiny model's are zero)."""
    with torch.no_grad():
        model.window_position.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return model.window_position.detach().clone()


def _recording(tmp_path: Path, clips: list[Path], name: str = "scene.wav") -> tuple[Path, np.ndarray]:
    """A recording of 6.9 s: quiet noise for exactly two hops (so the third window starts at clip 0), clip 0,
    then clips 1 and 2; its windows start every 1.2 s, the sixth lasts 0.9 s."""
    hop = int(1.5 * RATE) - int(0.2 * int(1.5 * RATE))  # the tiny model's 1.5 s windows, overlap 0.2
    noise = 0.01 * np.random.default_rng(0).standard_normal(2 * hop).astype(np.float32)
    samples = np.concatenate([noise, *[_samples(clip) for clip in clips[:3]]])
    sf.write(tmp_path / name, samples, RATE, subtype="FLOAT")
    return tmp_path / name, samples


def test_a_clip_within_one_window_takes_the_plain_path(pipeline, clips):
    windows = pipeline.embed_windows(clips[0])
    assert windows.starts.tolist() == [0.0] and windows.ends.tolist() == [1.5]
    np.testing.assert_array_equal(windows.embeddings, pipeline.embed_audio(clips[0]))


def test_the_window_that_holds_a_clip_is_that_clip(pipeline, clips, tmp_path):
    path, samples = _recording(tmp_path, clips)
    windows = pipeline.embed_windows(path)
    assert windows.starts[:4].tolist() == pytest.approx([0.0, 1.2, 2.4, 3.6])
    assert windows.ends[-1] == pytest.approx(len(samples) / RATE)
    # Window 2 spans 2.4-3.9 s, exactly clip 0: the same embeddings as the clip on its own (batched with
    # other windows, so equal to float32 rounding).
    np.testing.assert_allclose(windows.embeddings[2], pipeline.embed_audio(clips[0])[0], atol=1e-5)
    scores = pipeline.locate(path, QUERY)
    text = pipeline.embed_text(QUERY)[0]
    assert [(w.start, w.end) for w in scores] == list(zip(windows.starts, windows.ends, strict=True))
    expected = (windows.embeddings @ text).max(axis=1)
    np.testing.assert_allclose([w.similarity for w in scores], expected, rtol=0, atol=1e-6)
    assert scores[2].similarity == pytest.approx(
        float((pipeline.embed_audio(clips[0])[0] @ text).max()), abs=1e-5
    )


def test_prompt_runs_of_hand_worked_cases():
    assert prompt_runs(10, 4, 16) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]  # 4 runs of 10 windows
    assert prompt_runs(3, 4, 16) == [0, 1, 2]  # within the budget: one window each
    assert prompt_runs(5, 8, 4) == [0, 0, 0, 0, 0]  # a budget below one window: all pooled into one


def test_a_long_recording_prompts_the_llm_with_its_windows_pooled_within_the_budget(
    stage2_dir, clips, tmp_path, monkeypatch
):
    path, _ = _recording(tmp_path, clips)
    pipeline = MintPipeline.from_pretrained(stage2_dir, batch_size=2)
    model = pipeline.model
    num_queries = model.config.bridge.num_queries
    model.config = dataclasses.replace(model.config, windowing=WindowingConfig(prompt_budget=3 * num_queries))
    positions = _learned_positions(model)
    windows = pipeline.embed_windows(path)
    assert len(windows.starts) == 6

    prompts = []
    generate = model.llm.generate
    monkeypatch.setattr(
        model.llm, "generate", lambda prompt, *a, **k: prompts.append(prompt) or generate(prompt, *a, **k)
    )
    instruction = "describe the sound"
    captions = pipeline.caption([clips[1], path], instruction, max_new_tokens=3)
    assert len(captions) == 2 and all(isinstance(text, str) for text in captions)
    assert captions[0] == pipeline.caption(clips[1], instruction, max_new_tokens=3)

    # The reference: each window on its own through the soft prompt, averaged over runs of two windows,
    # each run with the position of its place in the prompt.
    reader_samples = _samples(path)
    with torch.no_grad():
        single = [
            window_prompts(
                model,
                pipeline.encode([reader_samples[round(start * RATE) : round(end * RATE)]]),
                [instruction],
            )[0]
            for start, end in zip(windows.starts, windows.ends, strict=True)
        ]
    expected = torch.cat(
        [
            torch.stack(single[start : start + 2]).mean(0) + positions[run]
            for run, start in enumerate((0, 2, 4))
        ]
    )[None]
    long_prompt = [prompt for prompt in prompts if prompt.shape[1] != num_queries]
    assert len(long_prompt) == 1 and long_prompt[0].shape == expected.shape == (
        1,
        3 * num_queries,
        expected.shape[2],
    )
    torch.testing.assert_close(long_prompt[0], expected, rtol=0, atol=1e-5)


def test_a_question_about_a_long_recording_prompts_the_windows_most_similar_to_it(
    stage2_dir, clips, tmp_path, monkeypatch
):
    path, samples = _recording(tmp_path, clips)
    pipeline = MintPipeline.from_pretrained(stage2_dir, batch_size=4)
    model = pipeline.model
    num_queries = model.config.bridge.num_queries
    # The budget would hold all six windows: the question still reads only its two.
    model.config = dataclasses.replace(
        model.config, windowing=WindowingConfig(prompt_budget=6 * num_queries, question_windows=2)
    )
    positions = _learned_positions(model)
    prompts = []
    generate = model.llm.generate
    monkeypatch.setattr(
        model.llm, "generate", lambda prompt, *a, **k: prompts.append(prompt) or generate(prompt, *a, **k)
    )
    question = "is there a dog barking?"
    pipeline.ask(path, question, max_new_tokens=2)

    # The reference: the two windows of highest ATC similarity to the question, each whole, in time order,
    # at positions 0 and 1.
    windows = pipeline.embed_windows(path)
    similarity = (windows.embeddings @ pipeline.embed_text(question)[0]).max(axis=1)
    chosen = sorted(np.argsort(similarity)[-2:].tolist())
    assert similarity[chosen].min() > np.delete(similarity, chosen).max()  # no tie decides the choice
    instruction = evaluation_instruction("qa", question=question)
    with torch.no_grad():
        expected = torch.cat(
            [
                window_prompts(
                    model,
                    pipeline.encode(
                        [samples[round(windows.starts[i] * RATE) : round(windows.ends[i] * RATE)]]
                    ),
                    [instruction],
                )[0]
                + positions[slot]
                for slot, i in enumerate(chosen)
            ]
        )[None]
    assert len(prompts) == 1
    torch.testing.assert_close(prompts[0], expected, rtol=0, atol=1e-5)


def test_further_questions_about_a_file_do_not_run_the_encoder_over_it_again(
    stage2_dir, clips, tmp_path, monkeypatch
):
    path, samples = _recording(tmp_path, clips)
    pipeline = MintPipeline.from_pretrained(stage2_dir, batch_size=4)
    model = pipeline.model
    model.config = dataclasses.replace(model.config, windowing=WindowingConfig(question_windows=2))
    encoded: list[int] = []
    encode = pipeline.encode
    monkeypatch.setattr(pipeline, "encode", lambda clips: encoded.append(len(clips)) or encode(clips))
    question = "is there a dog barking?"
    first = pipeline.ask(path, question, max_new_tokens=2)
    assert sum(encoded) == 6 + 2  # all six windows to choose from, then the two chosen
    encoded.clear()
    assert pipeline.ask(path, question, max_new_tokens=2) == first
    pipeline.locate(path, QUERY)
    pipeline.caption_segments(path, 2, max_new_tokens=2)
    assert sum(encoded) == 2 + 2  # the two question windows, the two timeline windows: nothing else
    assert not pipeline.embed_windows(path).embeddings.flags.writeable

    # The file changes: its windows are read again, and equal a fresh pipeline's.
    sf.write(path, samples[::-1].copy(), RATE, subtype="FLOAT")
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    fresh = MintPipeline(model, batch_size=4).embed_windows(path)
    np.testing.assert_array_equal(pipeline.embed_windows(path).embeddings, fresh.embeddings)


def test_a_timeline_captions_the_windows_most_unlike_the_rest_each_on_its_own(
    pipeline, stage2_dir, clips, tmp_path, capsys
):
    path, samples = _recording(tmp_path, clips)
    segments = pipeline.caption_segments(path, 2, max_new_tokens=3)

    # The reference: each window's mean embedding against the normalised median of them all; the two
    # farthest that do not overlap (windows 1.5 s long every 1.2 s: neighbours overlap), in time order.
    windows = pipeline.embed_windows(path)
    means = windows.embeddings.mean(axis=1)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    typical = np.median(means, axis=0)
    distance = 1 - means @ (typical / np.linalg.norm(typical))
    order = np.argsort(-distance)
    first = order[0]
    second = next(i for i in order[1:] if abs(int(i) - int(first)) > 1)
    chosen = sorted([int(first), int(second)])
    assert [(s.start, s.end) for s in segments] == [(windows.starts[i], windows.ends[i]) for i in chosen]
    for segment in segments:
        clip = samples[round(segment.start * RATE) : round(segment.end * RATE)]
        assert segment.text == pipeline.caption(clip, sample_rate=RATE, max_new_tokens=3)

    argv = ["caption", str(path), "--model", str(stage2_dir), "--segments", "2", "--max-new-tokens", "3"]
    assert main(argv) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    # Spans within the first minute, e.g. 00:01.2-00:02.7, then the caption.
    expected = [f"00:{s.start:04.1f}-00:{s.end:04.1f}" for s in segments]
    assert [line[1] for line in lines] == expected and [line[2] for line in lines] == [
        s.text for s in segments
    ]


def test_the_locate_and_caption_commands_read_a_long_file(stage2_dir, clips, tmp_path, capsys):
    path, _ = _recording(tmp_path, clips)
    assert main(["locate", str(path), QUERY, "--model", str(stage2_dir), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0].count("-") == 1 and lines[0].startswith("00:0")
    assert main(["caption", str(path), "--model", str(stage2_dir), "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}\t")


def test_the_index_finds_a_long_recording_by_its_best_window(pipeline, clips, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    scene, _ = _recording(folder, clips)  # window 2 (2.4-3.9 s) is clip 0
    for clip in clips[3:]:
        shutil.copy(clip, folder / clip.name)
    index_path = tmp_path / "index.sqlite"
    report = build_index(pipeline, folder, index_path, workers=0, progress=False)
    assert (report.added, report.total, report.skipped) == (4, 4, [])

    hits = pipeline.search(clips[0], index_path, k=4)  # clip 0 itself is not indexed, only inside the scene
    assert hits[0].path == "scene.wav" and (hits[0].start, hits[0].end) == pytest.approx((2.4, 3.9))
    assert hits[0].similarity == pytest.approx(1.0, abs=3e-3)  # the example against itself, int8-stored
    assert {(hit.start, hit.end) for hit in hits[1:]} == {(0.0, 1.5)}  # short clips are one whole window

    reranked = pipeline.search(QUERY, index_path, k=4, rerank=4)
    best = next(hit for hit in reranked if hit.path == "scene.wav")
    # ATM re-scores the scene's best window under ATC, read again from the file.
    window = pipeline.load_window(scene, best.start, best.end)
    expected = pipeline.match_scores(pipeline.encode([window]), QUERY)[0]
    assert best.match == pytest.approx(expected, abs=1e-5)
    by_window = [w.similarity for w in pipeline.locate(scene, QUERY)]
    assert best.similarity == pytest.approx(max(by_window), abs=3e-3)
    assert best.start == pytest.approx(pipeline.embed_windows(scene).starts[int(np.argmax(by_window))])
