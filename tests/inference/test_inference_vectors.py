"""The index's storage and candidate search, without a model: the compressed vectors against a hand-worked
error bound, candidate search against a plain numpy scan of every stored clip, incremental changes seen by
an index opened before them, and a writer that died between writing vectors and committing them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mint.errors import ConfigError
from mint.inference.candidates import CandidateIndex, list_count
from mint.inference.index import AudioIndex, ClipFile, IndexWriter
from mint.inference.search import rank_clips
from mint.inference.vectors import compress
from mint_testing import require_module

NUM_QUERIES, DIM = 8, 32
CLIPS = 3000
# The int8 store's error on a score: half a step of a residual of magnitude <= 0.25 per element, summed
# against a query row of norm 1 over 32 dims: <= sqrt(32) x 0.25 / 254 = 5.6e-3.
TOLERANCE = 5.6e-3


def _normalised(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values, axis=-1, keepdims=True)).astype(np.float32)


def _clips(rng: np.random.Generator, count: int) -> np.ndarray:
    """`[count, Nq, E]` unit query embeddings: clips around 40 topics, queries close to their clip (as a
    trained model's are: the demo model's pairwise cosine is 0.93)."""
    topics = _normalised(np.random.default_rng(0).standard_normal((40, DIM)))
    means = _normalised(
        topics[rng.integers(0, 40, count)] + 0.5 * rng.standard_normal((count, DIM)) / DIM**0.5
    )
    noise = 0.3 * rng.standard_normal((count, NUM_QUERIES, DIM)) / DIM**0.5
    return _normalised(means[:, None, :] + noise)


def _files(names: range | list[int]) -> list[ClipFile]:
    return [ClipFile(f"clip{number:05d}.wav", 1, 1, f"{number:064x}") for number in names]


def _writer(path: Path, ivf_min_clips: int = 10**9, vectors: str | None = None) -> IndexWriter:
    return IndexWriter.open(
        path, path.parent, "fingerprint", NUM_QUERIES, DIM, vectors=vectors, ivf_min_clips=ivf_min_clips
    )


def _write(
    path: Path, embeddings: np.ndarray, ivf_min_clips: int = 10**9, vectors: str | None = None
) -> None:
    with _writer(path, ivf_min_clips, vectors) as writer:
        for start in range(0, len(embeddings), 700):
            part = embeddings[start : start + 700]
            writer.upsert(_files(range(start, start + len(part))), part)
        writer.refresh_store()


def _scan(index: AudioIndex, text: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every clip's stored queries decoded, the best one's dot product with `text`, the top
    `k` by score (ties to the lower id)."""
    with sqlite3.connect(index.path) as connection:
        rows = np.array(connection.execute("SELECT clip, slot FROM windows").fetchall(), dtype=np.int64)
    scores = (index.store.vectors.embeddings(rows[:, 1]) @ text).max(axis=1)
    order = np.lexsort((rows[:, 0], -scores))[:k]
    return rows[order, 0], scores[order]


def _ranked(index: AudioIndex, text: np.ndarray, k: int, **options) -> tuple[np.ndarray, np.ndarray]:
    found = rank_clips(index, text, k, **options)
    return found.ids, found.scores


def _candidates(index: AudioIndex) -> CandidateIndex:
    index.refresh()
    return index.store.candidates


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    return _clips(np.random.default_rng(1), CLIPS)


@pytest.fixture(scope="module")
def texts() -> np.ndarray:
    rng = np.random.default_rng(2)
    return _normalised(_clips(rng, 20).mean(axis=1) + 0.5 * rng.standard_normal((20, DIM)) / DIM**0.5)


def test_compression_loses_at_most_half_a_step_and_scores_as_decoded(embeddings, tmp_path, texts):
    means, records = compress(embeddings[:50])
    decoded = means.astype(np.float32)[:, None, :] + records["code"] * records["scale"][:, :, None]
    # Half an int8 step of the residual from the stored (float16) mean; float32 rounding adds ~1e-7.
    residual = embeddings[:50] - means.astype(np.float32)[:, None, :]
    bound = np.abs(residual).max(axis=2, keepdims=True) / 254 + 1e-6
    assert (np.abs(decoded - embeddings[:50]) <= bound).all()
    assert bound.max() < 0.01  # queries near their mean: a small step, not a degenerate scale

    with _writer(tmp_path / "index.sqlite") as writer:
        writer.upsert(_files(range(50)), embeddings[:50])
        slots = np.arange(50)
        vectors = writer.store.vectors
        np.testing.assert_allclose(vectors.embeddings(slots), decoded, rtol=0, atol=1e-6)
        # text_scores never decodes the queries: the same maxima from sums in another order (32 float32
        # products of magnitude < 1 each: well under 1e-5).
        for text in texts[:3]:
            np.testing.assert_allclose(
                vectors.text_scores(slots, text), (decoded @ text).max(axis=1), rtol=0, atol=1e-5
            )


def test_the_exact_candidate_index_with_every_clip_a_candidate_is_a_full_scan(embeddings, texts, tmp_path):
    _write(tmp_path / "index.sqlite", embeddings)
    index = AudioIndex.open(tmp_path / "index.sqlite", ivf_min_clips=10**9)
    assert _candidates(index).is_exact
    for text in texts:
        ids, scores = _ranked(index, text, 10, candidates=CLIPS)
        expected_ids, expected_scores = _scan(index, text, 10)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)


def test_the_ivf_index_probing_every_list_is_exact_and_by_default_finds_the_top_ten(
    embeddings, texts, tmp_path
):
    _write(tmp_path / "index.sqlite", embeddings, ivf_min_clips=1000)
    index = AudioIndex.open(tmp_path / "index.sqlite", ivf_min_clips=1000)
    candidates = _candidates(index)
    lists = list_count(CLIPS)
    assert not candidates.is_exact and candidates.trained_for == CLIPS and lists == 256
    found = 0
    for text in texts:
        expected_ids, _ = _scan(index, text, 10)
        ids, _ = _ranked(index, text, 10, candidates=CLIPS, nprobe=lists)
        np.testing.assert_array_equal(ids, expected_ids)
        ids, _ = _ranked(index, text, 10, candidates=200)
        found += len(set(ids.tolist()) & set(expected_ids.tolist()))
    # Candidates by the mean, 32 of 256 lists probed, 200 re-scored: nearly every exact top-10 clip.
    assert found / (10 * len(texts)) >= 0.95


def test_additions_updates_and_deletions_reach_an_index_opened_before_them(embeddings, texts, tmp_path):
    path = tmp_path / "index.sqlite"
    _write(path, embeddings[:2000], ivf_min_clips=1000)
    index = AudioIndex.open(path, ivf_min_clips=1000)
    before = _candidates(index)
    assert not before.is_exact

    fresh = _clips(np.random.default_rng(5), 600)
    with _writer(path, ivf_min_clips=1000) as writer:
        writer.delete([file.path for file in _files(range(0, 2000, 4))])  # 500 clips go
        writer.upsert(_files(range(1, 301, 2)), fresh[:150])  # 150 keep their id, with new embeddings
        writer.upsert(_files(range(5000, 5450)), fresh[150:])  # 450 are new
        assert writer.count() == 1950
    # Nothing saved the candidate index since: the open index catches up from the rows on its next search.
    gone = set(index.entries(list(range(1, 2001, 4))))  # the ids of the deleted clips (path clip00000 = id 1)
    assert not gone
    for text in texts:
        ids, scores = _ranked(index, text, 10, candidates=10_000, nprobe=list_count(2000))
        expected_ids, expected_scores = _scan(index, text, 10)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)
    assert _candidates(index) is before and len(before.slots) == 1950
    # 1950 clips have not grown fourfold past the 2000 the lists were trained for: updated, not retrained.
    assert before.trained_for == 2000


def test_vectors_a_dead_writer_left_uncommitted_are_overwritten(embeddings, texts, tmp_path):
    path = tmp_path / "index.sqlite"
    with _writer(path) as writer:
        writer.upsert(_files(range(100)), embeddings[:100])
        # What a writer killed after its fsync and before its commit leaves: rows past the committed 100.
        writer.store.write(100, embeddings[-40:])
    with _writer(path) as writer:
        writer.upsert(_files(range(100, 130)), embeddings[100:130])
        np.testing.assert_allclose(
            writer.store.vectors.embeddings(np.arange(100, 130)), embeddings[100:130], rtol=0, atol=0.01
        )
        assert (path.with_name("index.sqlite.vectors") / "means.f16").stat().st_size == 130 * DIM * 2
    index = AudioIndex.open(path)
    ids, _ = _ranked(index, texts[0], 130, candidates=1000)
    assert sorted(ids.tolist()) == list(range(1, 131))


def test_a_lost_or_foreign_candidate_file_is_rebuilt_not_trusted(embeddings, texts, tmp_path):
    path = tmp_path / "index.sqlite"
    _write(path, embeddings[:500])
    saved = path.with_name("index.sqlite.vectors") / "candidates.npz"
    expected = _ranked(AudioIndex.open(path), texts[0], 10)
    for damage in (lambda: saved.unlink(), lambda: saved.write_bytes(b"not an npz")):
        damage()
        index = AudioIndex.open(path)
        np.testing.assert_array_equal(_ranked(index, texts[0], 10)[0], expected[0])
    other = CandidateIndex.load(saved, DIM + 1)
    assert other.generation == -1 and len(other.slots) == 0


def _same_top_ten(first: AudioIndex, second: AudioIndex, query: np.ndarray) -> None:
    """The same top ten up to the built-in store's int8 error, TOLERANCE: the k-th best scores agree within
    it, and a clip in one top ten but not the other scores within twice it of the other's tenth."""
    first_ids, first_scores = _ranked(first, query, 10, candidates=2000)
    second_ids, second_scores = _ranked(second, query, 10, candidates=2000)
    np.testing.assert_allclose(first_scores, second_scores, rtol=0, atol=TOLERANCE)
    for ids, scores, other_ids, other_scores in (
        (first_ids, first_scores, second_ids, second_scores),
        (second_ids, second_scores, first_ids, first_scores),
    ):
        for clip, score in zip(ids.tolist(), scores.tolist(), strict=True):
            assert clip in other_ids or score <= other_scores[-1] + 2 * TOLERANCE


def test_the_qdrant_store_finds_what_the_built_in_store_finds(embeddings, texts, tmp_path):
    require_module("qdrant_client", "pip install 'mint-audio[qdrant]'")
    subset, fresh = embeddings[:1500], _clips(np.random.default_rng(6), 300)
    for clips in (subset, fresh):
        assert np.abs(clips - clips.mean(axis=1, keepdims=True)).max() <= 0.25
    qdrant = f"qdrant-local://{tmp_path}/qdrant/clips"
    _write(tmp_path / "local.sqlite", subset)
    _write(tmp_path / "qdrant.sqlite", subset, vectors=qdrant)
    example = subset[7]  # an example clip's queries: the set-to-set similarity, itself first
    with (
        AudioIndex.open(tmp_path / "local.sqlite") as local,
        AudioIndex.open(tmp_path / "qdrant.sqlite") as engine,
    ):
        assert engine.info.vectors == qdrant
        for query in [*texts[:, None, :], example]:
            _same_top_ten(local, engine, query)
        assert _ranked(engine, example, 1)[0][0] == 8

    for name, location in (("local.sqlite", None), ("qdrant.sqlite", qdrant)):
        with _writer(tmp_path / name, vectors=location) as writer:
            writer.delete([file.path for file in _files(range(0, 1500, 3))])
            writer.upsert(_files(range(1, 200, 2)), fresh[:100])
            writer.upsert(_files(range(3000, 3200)), fresh[100:])
            writer.refresh_store()
    with (
        AudioIndex.open(tmp_path / "local.sqlite") as local,
        AudioIndex.open(tmp_path / "qdrant.sqlite") as engine,
    ):
        for query in texts[:, None, :]:
            _same_top_ten(local, engine, query)
        deleted = set(range(1, 1501, 3))
        assert not deleted & set(_ranked(engine, texts[0], 1500, candidates=2000)[0].tolist())


def test_an_index_keeps_its_vector_store(embeddings, tmp_path):
    require_module("qdrant_client", "pip install 'mint-audio[qdrant]'")
    _write(tmp_path / "index.sqlite", embeddings[:10])
    with pytest.raises(ConfigError, match="keeps its vectors at the files beside it, not qdrant-local"):
        _writer(tmp_path / "index.sqlite", vectors=f"qdrant-local://{tmp_path}/q/c")
    for wrong in ("qdrant://localhost", "qdrant-local://relative/c", "milvus://host/c"):
        with pytest.raises(ConfigError, match="expected qdrant"):
            _writer(tmp_path / "other.sqlite", vectors=wrong)


def test_an_open_index_follows_a_rebuild(embeddings, texts, tmp_path):
    path = tmp_path / "index.sqlite"
    _write(path, embeddings[:500])
    with AudioIndex.open(path) as index:
        before = _ranked(index, texts[0], 5)
        # Rebuilt with other clips, to the same generation: only the rebuild's token tells them apart.
        with IndexWriter.open(path, tmp_path, "fingerprint", NUM_QUERIES, DIM, rebuild=True) as writer:
            writer.upsert(_files(range(1000, 1500)), embeddings[1000:1500])
            writer.refresh_store()
        after = _ranked(index, texts[0], 5)
        with AudioIndex.open(path) as fresh:
            expected = _ranked(fresh, texts[0], 5)
        np.testing.assert_array_equal(after[0], expected[0])
        np.testing.assert_array_equal(after[1], expected[1])
        assert not np.array_equal(after[1], before[1])
