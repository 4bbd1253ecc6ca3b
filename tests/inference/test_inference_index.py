"""The audio index built from a folder (incremental builds, one folder and model, bad files) and search
through a model, against independent recomputations. The storage and candidate search at scale are
tested in test_inference_vectors.py."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.errors import ConfigError, DataError
from mint.inference import AudioIndex, MintPipeline, build_index
from mint.inference.search import DEFAULT_CANDIDATES
from mint.modeling import MintModel
from mint.modeling.config import WindowingConfig
from mint_testing import require_module

QUERY = "a dog barks in the rain"


@pytest.fixture(scope="module")
def pipeline(stage2_dir) -> MintPipeline:
    return MintPipeline.from_pretrained(stage2_dir, batch_size=4)


@pytest.fixture(scope="module")
def model(stage2_dir) -> MintModel:
    return MintModel.from_pretrained(stage2_dir).eval()


@pytest.fixture
def folder(tmp_path, clips) -> Path:
    """The clips in nested folders, a non-audio file (not indexed) and a broken .wav (skipped)."""
    root = tmp_path / "audio"
    for number, clip in enumerate(clips):
        target = root / ("birds" if number % 2 else "street") / clip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    (root / "notes.txt").write_text("not audio")
    (root / "broken.wav").write_bytes(b"RIFF but not really")
    return root


def _rows(index_path: Path) -> dict[str, tuple]:
    with sqlite3.connect(index_path) as connection:
        query = "SELECT path, mtime_ns, sha256, slot FROM clips JOIN windows ON windows.clip = clips.id"
        return {row[0]: row[1:] for row in connection.execute(query)}


def _stored(index_path: Path, slot: int) -> np.ndarray:
    return AudioIndex.open(index_path).store.vectors.embeddings(np.array([slot]))[0]


def _assert_stored_as(stored: np.ndarray, direct: np.ndarray) -> None:
    """The stored queries are the mean (float16) plus an int8 code of the residual, at a scale of the
    residual's largest magnitude / 127 per query: rounding a code moves a value by at most half a step,
    peak / 254 (the mean's own float16 rounding cancels: the residual is taken from the rounded mean). The
    1e-3 covers the batched encode against the one-clip one."""
    residual = direct - direct.mean(axis=0).astype(np.float16).astype(np.float32)
    bound = np.abs(residual).max(axis=1, keepdims=True) / 254 + 1e-3
    assert (np.abs(stored - direct) <= bound).all()


@torch.no_grad()
def _direct(model: MintModel, path: Path) -> np.ndarray:
    samples, _ = sf.read(path, dtype="float32")
    waveform = torch.from_numpy(samples)[None]
    return model.audio_embeddings(model.encode_audio(waveform, torch.tensor([waveform.shape[1]])))[0].numpy()


def test_builds_are_incremental(pipeline, model, folder, tmp_path):
    index_path = tmp_path / "index.sqlite"
    first = build_index(pipeline, folder, index_path, workers=0, progress=False)
    assert (first.added, first.updated, first.unchanged, first.removed, first.total) == (6, 0, 0, 0, 6)
    assert [skipped.path for skipped in first.skipped] == ["broken.wav"]
    assert "not a recognised audio file" in first.skipped[0].reason
    rows = _rows(index_path)
    for relative, (_, _, slot) in rows.items():
        _assert_stored_as(_stored(index_path, slot), _direct(model, folder / relative))

    second = build_index(pipeline, folder, index_path, workers=0, progress=False)
    assert (second.added, second.updated, second.unchanged, second.removed, second.total) == (0, 0, 6, 0, 6)
    assert _rows(index_path) == rows

    touched, changed, deleted = sorted(rows)[:3]
    stamp = os.stat(folder / touched).st_mtime_ns + 5_000_000_000
    os.utime(folder / touched, ns=(stamp, stamp))
    samples, rate = sf.read(folder / changed, dtype="float32")
    sf.write(folder / changed, samples[::-1].copy(), rate)
    (folder / deleted).unlink()
    third = build_index(pipeline, folder, index_path, workers=2, progress=False)
    assert (third.added, third.updated, third.unchanged, third.removed, third.total) == (0, 1, 4, 1, 5)
    after = _rows(index_path)
    assert deleted not in after
    assert after[touched][0] == stamp and after[touched][1:] == rows[touched][1:]
    assert after[changed][2] != rows[changed][2]  # a new slot; the old one stays unused
    _assert_stored_as(_stored(index_path, after[changed][2]), _direct(model, folder / changed))


def test_index_build_command_reports_the_counts(stage2_dir, folder, tmp_path, capsys):
    args = ["index", "build", str(folder), "--model", str(stage2_dir), "--index", str(tmp_path / "i.sqlite")]
    assert main([*args, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "6 clips indexed: 6 added" in captured.out and "skipped broken.wav" in captured.err
    assert main([*args, "--no-progress"]) == 0
    assert "0 added, 0 re-embedded, 6 unchanged, 0 removed, 1 skipped" in capsys.readouterr().out


def test_an_index_belongs_to_one_folder_and_one_model(pipeline, stage1_dir, folder, tmp_path):
    index_path = tmp_path / "index.sqlite"
    build_index(pipeline, folder, index_path, workers=0, progress=False)
    other = MintPipeline.from_pretrained(stage1_dir)
    with pytest.raises(ConfigError, match="another model"):
        build_index(other, folder, index_path, workers=0, progress=False)
    with pytest.raises(ConfigError, match="another model"):
        other.search(QUERY, index_path)
    with pytest.raises(ConfigError, match="is of the folder"):
        build_index(pipeline, folder / "birds", index_path, workers=0, progress=False)
    report = build_index(other, folder / "birds", index_path, workers=0, rebuild=True, progress=False)
    assert report.added == 3 and report.total == 3
    assert AudioIndex.open(index_path).root == (folder / "birds").resolve()


def test_an_index_follows_its_model_through_calibration_and_generation_settings(stage2_dir, folder, tmp_path):
    """What the stored vectors depend on decides whether an index takes a model; the re-ranking weight that
    calibration writes into the model, or how many windows a question reads, does not."""
    pipeline = MintPipeline.from_pretrained(stage2_dir, batch_size=4)
    index_path = tmp_path / "index.sqlite"
    build_index(pipeline, folder, index_path, workers=0, progress=False)
    config = pipeline.model.config
    for changed in (
        dataclasses.replace(config, rerank_weight=0.25),
        dataclasses.replace(config, windowing=WindowingConfig(prompt_budget=64, question_windows=3)),
    ):
        pipeline.model.config, pipeline._fingerprint = changed, None
        assert pipeline.search(QUERY, index_path, k=2, rerank=0)
    for changed in (
        dataclasses.replace(config, windowing=WindowingConfig(overlap=0.5)),  # other windows are stored
        dataclasses.replace(config, max_text_length=8),  # other query texts
    ):
        pipeline.model.config, pipeline._fingerprint = changed, None
        with pytest.raises(ConfigError, match="another model"):
            pipeline.search(QUERY, index_path, k=2, rerank=0)


def test_opening_something_that_is_not_an_index_fails_clearly(pipeline, folder, tmp_path):
    with pytest.raises(DataError, match="no index here"):
        AudioIndex.open(tmp_path / "absent.sqlite")
    (tmp_path / "text.sqlite").write_text("hello, this is text" * 100)
    with pytest.raises(DataError, match="not a mint index"):
        AudioIndex.open(tmp_path / "text.sqlite")
    with sqlite3.connect(tmp_path / "other.sqlite") as connection:
        connection.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(DataError, match=r"not a mint index \(tables \['songs'\]\)"):
        build_index(pipeline, folder, tmp_path / "other.sqlite", progress=False)


def test_an_index_of_the_previous_format_is_refused_and_rebuilt(pipeline, folder, tmp_path):
    index_path = tmp_path / "old.sqlite"
    with sqlite3.connect(index_path) as connection:  # format 1 kept float16 embeddings in the rows
        connection.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE clips (id INTEGER PRIMARY KEY, path TEXT, embedding BLOB);"
            "INSERT INTO meta VALUES ('format', '1');"
        )
    with pytest.raises(DataError, match=r"index format '1'; this version reads 2: .* --rebuild"):
        build_index(pipeline, folder, index_path, workers=0, progress=False)
    report = build_index(pipeline, folder, index_path, workers=0, rebuild=True, progress=False)
    assert report.added == 6 and len(pipeline.search(QUERY, index_path, k=6, rerank=0)) == 6


def _committed(index_path: Path) -> int:
    try:
        with sqlite3.connect(f"{index_path.as_uri()}?mode=ro", uri=True) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM clips").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_build_killed_midway_keeps_what_it_committed_and_resumes(stage2_dir, pipeline, clips, tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for copy in range(16):
        for clip in clips:
            shutil.copy(clip, root / f"{copy:02d}-{clip.name}")
    index_path = tmp_path / "index.sqlite"
    command = [sys.executable, "-c", "from mint.cli.main import run; run()", "index", "build", str(root)]
    options = ["--index", str(index_path), "--model", str(stage2_dir), "--batch-size", "1", "--workers", "0"]
    build = subprocess.Popen([*command, *options, "--no-progress"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _committed(index_path) < 3 and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(build.pid, signal.SIGKILL)
    assert build.wait() == -signal.SIGKILL, build.stderr.read().decode()
    committed = _committed(index_path)
    assert 3 <= committed < 96, "the build was not caught midway"

    resumed = build_index(pipeline, root, index_path, workers=0, progress=False)
    assert (resumed.unchanged, resumed.added, resumed.total) == (committed, 96 - committed, 96)
    build_index(pipeline, root, tmp_path / "clean.sqlite", workers=0, progress=False)
    hits = {hit.path: hit.similarity for hit in pipeline.search(QUERY, index_path, k=96, rerank=0)}
    clean = {
        hit.path: hit.similarity for hit in pipeline.search(QUERY, tmp_path / "clean.sqlite", k=96, rerank=0)
    }
    assert hits.keys() == clean.keys() and len(hits) == 96
    # One clip at a time against four: the same embeddings up to batching and two int8 roundings.
    np.testing.assert_allclose([hits[path] for path in clean], list(clean.values()), rtol=0, atol=3e-3)


@pytest.fixture
def built(pipeline, folder, tmp_path) -> AudioIndex:
    build_index(pipeline, folder, tmp_path / "index.sqlite", workers=0, progress=False)
    return AudioIndex.open(tmp_path / "index.sqlite")


@torch.no_grad()
def _independent(model: MintModel, index: AudioIndex) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every indexed clip's ATC similarity and ATM log-odds with QUERY, from the audio files."""
    paths = sorted(_rows(index.path))
    ids, mask = model.tokenize([QUERY])
    text = model.text_embeddings(ids, mask)[0].numpy()
    similarity, match = [], []
    for relative in paths:
        samples, _ = sf.read(index.root / relative, dtype="float32")
        waveform = torch.from_numpy(samples)[None]
        audio = model.encode_audio(waveform, torch.tensor([waveform.shape[1]]))
        similarity.append(float((model.audio_embeddings(audio)[0].numpy() @ text).max()))
        logits = model.match_logits(audio, ids, mask)[0]
        match.append(float(logits[1] - logits[0]))
    return paths, np.array(similarity), np.array(match)


def test_text_search_ranks_as_an_independent_recomputation(pipeline, model, built):
    paths, similarity, match = _independent(model, built)
    by_similarity = [paths[i] for i in np.argsort(-similarity)]
    scores = {paths[i]: match[i] for i in range(len(paths))}

    atc_only = pipeline.search(QUERY, built, k=6, rerank=0)
    assert [hit.path for hit in atc_only] == by_similarity
    assert all(hit.match is None and hit.score is None for hit in atc_only)
    assert [hit.rank for hit in atc_only] == list(range(1, 7))
    expected = {paths[i]: similarity[i] for i in range(len(paths))}
    np.testing.assert_allclose(
        [hit.similarity for hit in atc_only], [expected[h.path] for h in atc_only], atol=3e-3
    )

    # Re-ranked: ATC similarity (as stored in the index, float16) + w x ATM log-odds, w the model's.
    weight = model.rerank_weight
    assert weight == pytest.approx(model.config.temperature)  # not calibrated
    reranked = pipeline.search(QUERY, built, k=6, rerank=6)
    np.testing.assert_allclose([hit.match for hit in reranked], [scores[h.path] for h in reranked], atol=1e-5)
    combined = {hit.path: hit.similarity + weight * scores[hit.path] for hit in reranked}
    assert [hit.path for hit in reranked] == sorted(combined, key=lambda path: -combined[path])
    np.testing.assert_allclose(
        [hit.score for hit in reranked], [combined[h.path] for h in reranked], atol=1e-5
    )

    # Only the top two under ATC are re-ranked; places three and four keep ATC order.
    partial = pipeline.search(QUERY, built, k=4, rerank=2)
    top_two = sorted(by_similarity[:2], key=lambda path: -combined[path])
    assert [hit.path for hit in partial] == [*top_two, *by_similarity[2:4]]
    assert [hit.match is not None for hit in partial] == [True, True, False, False]


def test_an_example_clip_finds_itself_first(pipeline, built, folder):
    for relative in ("birds", "street"):
        example = sorted((folder / relative).glob("*.wav"))[0]
        hits = pipeline.search(example, built, k=3)
        assert hits[0].path == example.relative_to(folder).as_posix()
        assert hits[0].similarity == pytest.approx(1.0, abs=3e-3) and hits[0].match is None
        assert hits[1].similarity < hits[0].similarity


def test_an_index_with_its_vectors_in_qdrant_searches_as_the_built_in_one(
    stage2_dir, pipeline, folder, tmp_path
):
    require_module("qdrant_client", "pip install 'mint-audio[qdrant]'")
    url = f"qdrant-local://{tmp_path}/qdrant/clips"
    engine, local = tmp_path / "qdrant.sqlite", tmp_path / "local.sqlite"
    args = [
        "index",
        "build",
        str(folder),
        "--model",
        str(stage2_dir),
        "--index",
        str(engine),
        "--vectors",
        url,
    ]
    assert main([*args, "--no-progress"]) == 0
    build_index(pipeline, folder, local, workers=0, progress=False)
    example = sorted((folder / "birds").glob("*.wav"))[0]
    for query, rerank in ((QUERY, 6), (QUERY, 0), (example, 0)):
        expected = pipeline.search(query, local, k=6, rerank=rerank)
        found = pipeline.search(query, engine, k=6, rerank=rerank)
        assert [hit.path for hit in found] == [hit.path for hit in expected]
        # float32 in Qdrant against int8 residuals (the bound of _assert_stored_as on each element).
        np.testing.assert_allclose([h.similarity for h in found], [h.similarity for h in expected], atol=3e-3)


def test_a_candidate_deleted_after_indexing_is_left_out(pipeline, built):
    victim = pipeline.search(QUERY, built, k=1, rerank=0)[0].path
    (built.root / victim).unlink()
    hits = pipeline.search(QUERY, built, k=6, rerank=6)
    assert victim not in [hit.path for hit in hits] and len(hits) == 5


def test_search_command_prints_ranked_files(stage2_dir, built, capsys):
    args = ["search", QUERY, "--index", str(built.path), "--model", str(stage2_dir), "--k", "3"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "1"
    assert all(Path(line.split()[-1]).is_file() for line in lines)
    example = built.root / lines[0].split()[-1]
    assert main(["search", "--audio", str(example), *args[2:]]) == 0
    assert main(["search", *args[2:]]) == 2
    assert "either a text QUERY or --audio" in capsys.readouterr().err


def test_the_search_command_proposes_as_many_candidates_as_the_api():
    from mint.cli.main import build_parser

    args = build_parser().parse_args(["search", "x", "--index", "i", "--model", "m"])
    assert args.candidates == DEFAULT_CANDIDATES
