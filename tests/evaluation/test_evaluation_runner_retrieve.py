"""`mint eval retrieve`: ATC ranking and ATM re-ranking of the top k, checked against a by-hand recomputation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mint.cli.main import main
from mint.config import load_config
from mint.data.synth import SynthSpec, generate_corpus
from mint.evaluation.retrieve import rerank_rows, top_k
from mint.modeling import MintModel
from mint.training.config import PretrainConfig
from mint_testing import tiny_pretrain_overrides

REPO = Path(__file__).resolve().parents[2]
K = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models run fastest on one thread; more only contend on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("retrieve-model")
    config = load_config(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", tiny_pretrain_overrides(folder))
    torch.manual_seed(1)
    return MintModel.from_config(config.model).save_pretrained(folder / "model")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """24 clips whose captions are all distinct (no exact ties), one corrupt clip, one without captions."""
    folder = tmp_path_factory.mktemp("retrieve-data")
    generate_corpus(SynthSpec(num_clips=24, seed=5, clip_seconds=2.1, max_events=2), folder, 1, {"test": 1.0})
    records, seen = [], set()
    for line in (folder / "test.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["captions"] = [caption for caption in record["captions"] if caption not in seen]
        seen.update(record["captions"])
        records.append(record)
    (folder / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    records.insert(5, {"id": "broken", "audio": "audio/broken.wav", "captions": ["a broken recording"]})
    records.insert(9, {"id": "silent-text", "audio": records[0]["audio"], "labels": ["tone"]})
    path = folder / "eval.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _kept(manifest: Path) -> list[dict]:
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [record for record in records if record.get("captions") and record["id"] != "broken"]


@torch.no_grad()
def _by_hand(model: MintModel, manifest: Path) -> tuple[list, np.ndarray, np.ndarray, list]:
    """Per-clip audio features, per-caption ATC similarity [Na, Nt], owner of each caption, captions."""
    keep = round(model.config.max_audio_seconds * model.sample_rate)
    audio, queries, captions, owner = [], [], [], []
    for row, record in enumerate(_kept(manifest)):
        samples, _ = sf.read(manifest.parent / record["audio"], dtype="float32")
        waveform = torch.from_numpy(samples[:keep])[None]
        features = model.encode_audio(waveform, torch.tensor([waveform.shape[1]]))
        audio.append(features)
        queries.append(model.audio_embeddings(features)[0])
        captions += record["captions"]
        owner += [row] * len(record["captions"])
    texts = torch.stack([model.text_embeddings(*model.tokenize([caption]))[0] for caption in captions])
    similarity = np.array([[float((q @ t).max()) for t in texts] for q in queries])
    return audio, similarity, np.array(owner), captions


def _rank_metrics(orders: list[list[int]], relevant: list[set[int]]) -> dict:
    """R@1/5/10, mAP@10, median and mean rank of ranked galleries, written out from the definitions."""
    first, precisions = [], []
    for order, hits in zip(orders, relevant, strict=True):
        flags = [item in hits for item in order]
        first.append(flags.index(True) + 1)
        found = [sum(flags[: i + 1]) / (i + 1) for i in range(10) if flags[i]]
        precisions.append(sum(found) / min(len(hits), 10))
    first = np.array(first)
    metrics = {f"R@{k}": float(np.mean(first <= k)) for k in (1, 5, 10)}
    metrics.update({"mAP@10": float(np.mean(precisions)), "median_rank": float(np.median(first))})
    metrics["mean_rank"] = float(first.mean())
    return metrics


def _orders(scores: np.ndarray, atm: dict | None, pair) -> list[list[int]]:
    """Per query row: top K by ATC re-ordered by ATM (when given), then the rest in ATC order."""
    orders = []
    for query, row in enumerate(scores):
        by_atc = sorted(range(len(row)), key=lambda item: -row[item])
        head = by_atc[:K]
        if atm is not None:
            head = sorted(head, key=lambda item: -atm[pair(query, item)])
        orders.append(head + by_atc[K:])
    return orders


def test_rerank_moves_only_the_top_k_and_keeps_the_rest_in_atc_order():
    similarity = np.array([[0.9, 0.1, 0.5, 0.7, 0.3]])
    atm = np.array([[-5.0, 100.0, 100.0, 3.0, 50.0]])
    top = top_k(similarity, 2)
    assert top.tolist() == [[0, 3]]
    reranked = rerank_rows(similarity, top, atm)
    # Item 3 has the better ATM score of the two re-ranked, and even item 0's ATM score of -5 stays above
    # every item outside the top 2; items 1, 2, 4 are not re-ranked, whatever their ATM score.
    assert np.argsort(-reranked[0], kind="stable").tolist() == [3, 0, 2, 4, 1]
    assert reranked[0, [1, 2, 4]].tolist() == [0.1, 0.5, 0.3]


def test_retrieve_cli_matches_a_by_hand_atc_and_atm_ranking(model_dir, manifest, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["eval", "retrieve", str(manifest), "--model", str(model_dir), "--out", str(out), "--k", str(K)]
    assert (
        main([*args, "--no-progress", "--batch-size", "5", "--pair-batch-size", "17", "--device", "cpu"]) == 0
    )
    assert "ATM pair evaluations" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())

    skipped = results["skipped"]
    assert skipped["count"] == 2 and skipped["by_reason"] == {"no captions": 1, "unreadable audio": 1}
    assert {clip["id"] for clip in skipped["first"]} == {"broken", "silent-text"}
    model = MintModel.from_pretrained(model_dir).eval()
    audio, similarity, owner, captions = _by_hand(model, manifest)
    n_audio, n_text = similarity.shape
    assert results["counts"] == {"audio": n_audio, "captions": n_text} and n_audio == 24
    assert results["data"]["clips_in_manifest"] == 26 and results["data"]["clips_evaluated"] == 24

    # ATM scores only the union of each clip's top-K captions and each caption's top-K clips.
    pairs = {(a, t) for a in range(n_audio) for t in np.argsort(-similarity[a])[:K]}
    pairs |= {(a, t) for t in range(n_text) for a in np.argsort(-similarity[:, t])[:K]}
    assert results["atm"]["pair_evaluations"] == len(pairs)
    assert len(pairs) <= n_audio * K + n_text * K < n_audio * n_text
    atm = {}
    with torch.no_grad():
        for a, t in pairs:
            logits = model.match_logits(audio[a], *model.tokenize([captions[t]]))[0]
            atm[(a, t)] = float(logits[1] - logits[0])

    a2t_relevant = [set(np.flatnonzero(owner == a)) for a in range(n_audio)]
    t2a_relevant = [{owner[t]} for t in range(n_text)]
    expected = {
        "atc": {
            "audio_to_text": _rank_metrics(_orders(similarity, None, None), a2t_relevant),
            "text_to_audio": _rank_metrics(_orders(similarity.T, None, None), t2a_relevant),
        },
        "atc+atm": {
            "audio_to_text": _rank_metrics(_orders(similarity, atm, lambda q, i: (q, i)), a2t_relevant),
            "text_to_audio": _rank_metrics(_orders(similarity.T, atm, lambda q, i: (i, q)), t2a_relevant),
        },
    }
    for method, directions in expected.items():
        for direction, metrics in directions.items():
            assert results["metrics"][method][direction] == pytest.approx(metrics), (method, direction)

    # The first ten items of every query: the top K in ATM order, then the rest in ATC order.
    clips = [record["id"] for record in _kept(manifest)]
    names = [f"{record['id']}/{n}" for record in _kept(manifest) for n in range(len(record["captions"]))]
    a2t = {"atc": _orders(similarity, None, None), "atc+atm": _orders(similarity, atm, lambda q, i: (q, i))}
    t2a = {
        "atc": _orders(similarity.T, None, None),
        "atc+atm": _orders(similarity.T, atm, lambda q, i: (i, q)),
    }
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert len(rankings) == n_audio + n_text
    for row in rankings[:n_audio]:
        query = clips.index(row["query"])
        for method, orders in a2t.items():
            assert row[method] == [names[item] for item in orders[query][:10]], (row["query"], method)
    for row in rankings[n_audio:]:
        query = names.index(row["query"])
        assert row["text"] == captions[query]
        for method, orders in t2a.items():
            assert row[method] == [clips[item] for item in orders[query][:10]], (row["query"], method)
    moved = sum(row["atc"][:K] != row["atc+atm"][:K] for row in rankings)
    assert moved > len(rankings) // 2, "ATM re-ordered almost no top-K list; the check above would be weak"

    assert (out / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    summary = (out / "summary.md").read_text()
    assert "atc+atm" in summary and "recall_at_k.png" in summary
    assert not [entry.name for entry in out.iterdir() if entry.name.startswith(".")]


def test_k_beyond_the_gallery_scores_every_pair_once(model_dir, manifest, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "retrieve", str(manifest), "--model", str(model_dir), "--out", str(out), "--no-progress"]
    assert main([*args, "--k", "500", "--limit", "8"]) == 0
    results = json.loads((out / "results.json").read_text())
    n_audio, n_text = results["counts"]["audio"], results["counts"]["captions"]
    assert results["atm"]["pair_evaluations"] == n_audio * n_text == results["atm"]["all_pairs"]
