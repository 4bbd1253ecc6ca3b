"""`mint eval retrieve`: ATC ranking and ATM re-ranking of the top k, checked against a by-hand recomputation;
the re-ranking weight's calibration on a validation manifest."""

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
from mint.errors import ConfigError
from mint.evaluation.retrieve import (
    RankedPairs,
    RetrieveOptions,
    calibrate_rerank,
    choose_weight,
    rerank_rows,
    run_retrieval,
    top_k,
)
from mint.modeling import MintModel
from mint.training.config import PretrainConfig
from mint_testing import jitter_trainable_, tiny_pretrain_overrides

REPO = Path(__file__).resolve().parents[2]
K = 3
CALIBRATION_K = 8  # re-ranking the top 8 can change R@1 and R@5


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


def _orders(scores: np.ndarray, atm: dict | None, pair, weight: float = 0.0, k: int = K) -> list[list[int]]:
    """Per query row: top k by ATC re-ordered by ATC + weight x ATM (when given), then the rest in ATC order."""
    orders = []
    for query, row in enumerate(scores):
        by_atc = sorted(range(len(row)), key=lambda item: -row[item])
        head = by_atc[:k]
        if atm is not None:
            head = sorted(head, key=lambda item: -(row[item] + weight * atm[pair(query, item)]))
        orders.append(head + by_atc[k:])
    return orders


def test_rerank_moves_only_the_top_k_and_keeps_the_rest_in_atc_order():
    similarity = np.array([[0.9, 0.1, 0.5, 0.7, 0.3]])
    atm = np.array([[-5.0, 100.0, 100.0, 3.0, 50.0]])
    top = top_k(similarity, 2)
    assert top.tolist() == [[0, 3]]
    reranked = rerank_rows(similarity, top, atm, weight=1.0)
    # Item 3 scores 0.7 + 3 against item 0's 0.9 - 5, and even item 0 stays above every item outside the
    # top 2; items 1, 2, 4 are not re-ranked, whatever their ATM score.
    assert np.argsort(-reranked[0], kind="stable").tolist() == [3, 0, 2, 4, 1]
    assert reranked[0, [1, 2, 4]].tolist() == [0.1, 0.5, 0.3]
    # With a small weight ATC's lead decides: 0.9 - 0.05 > 0.7 + 0.03.
    light = rerank_rows(similarity, top, atm, weight=0.01)
    assert np.argsort(-light[0], kind="stable").tolist() == [0, 3, 2, 4, 1]


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

    # Not calibrated: the weight is the model's temperature.
    weight = results["atm"]["weight"]
    assert (
        weight == pytest.approx(model.config.temperature)
        and "not calibrated" in results["atm"]["weight_source"]
    )
    a2t_relevant = [set(np.flatnonzero(owner == a)) for a in range(n_audio)]
    t2a_relevant = [{owner[t]} for t in range(n_text)]
    expected = {
        "atc": {
            "audio_to_text": _rank_metrics(_orders(similarity, None, None), a2t_relevant),
            "text_to_audio": _rank_metrics(_orders(similarity.T, None, None), t2a_relevant),
        },
        "atc+atm": {
            "audio_to_text": _rank_metrics(
                _orders(similarity, atm, lambda q, i: (q, i), weight), a2t_relevant
            ),
            "text_to_audio": _rank_metrics(
                _orders(similarity.T, atm, lambda q, i: (i, q), weight), t2a_relevant
            ),
        },
    }
    for method, directions in expected.items():
        for direction, metrics in directions.items():
            assert results["metrics"][method][direction] == pytest.approx(metrics), (method, direction)

    # The first ten items of every query: the top K in re-ranking order, then the rest in ATC order.
    clips = [record["id"] for record in _kept(manifest)]
    names = [f"{record['id']}/{n}" for record in _kept(manifest) for n in range(len(record["captions"]))]
    a2t = {
        "atc": _orders(similarity, None, None),
        "atc+atm": _orders(similarity, atm, lambda q, i: (q, i), weight),
    }
    t2a = {
        "atc": _orders(similarity.T, None, None),
        "atc+atm": _orders(similarity.T, atm, lambda q, i: (i, q), weight),
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


def test_calibration_picks_the_best_weight_on_validation_and_saves_it(model_dir, manifest, tmp_path):
    model_copy = tmp_path / "model"
    # Jittered, so that ATM's log-odds differ clearly between pairs and the weight changes the rankings.
    jitter_trainable_(MintModel.from_pretrained(model_dir), 0.2).save_pretrained(model_copy)
    weights_before = (model_copy / "model.safetensors").read_bytes()
    grid = (0.0, 0.01, 0.1, 1.0, 10.0)
    options = RetrieveOptions(k=CALIBRATION_K, progress=False, workers=0, device="cpu")
    results = calibrate_rerank(manifest, model_copy, tmp_path / "calibration", options, grid=grid)
    assert (model_copy / "model.safetensors").read_bytes() == weights_before

    model = MintModel.from_pretrained(model_copy).eval()
    audio, similarity, owner, captions = _by_hand(model, manifest)
    n_audio, n_text = similarity.shape
    atm = {}
    with torch.no_grad():
        for a in range(n_audio):
            for t in range(n_text):
                logits = model.match_logits(audio[a], *model.tokenize([captions[t]]))[0]
                atm[(a, t)] = float(logits[1] - logits[0])
    a2t_relevant = [set(np.flatnonzero(owner == a)) for a in range(n_audio)]
    t2a_relevant = [{owner[t]} for t in range(n_text)]

    def hits(weight: float) -> list[np.ndarray]:
        """Per direction, each query's mean over k = 1, 5, 10 of "a relevant item is in the top k"."""
        per_direction = []
        for orders, relevant in (
            (_orders(similarity, atm, lambda q, i: (q, i), weight, CALIBRATION_K), a2t_relevant),
            (_orders(similarity.T, atm, lambda q, i: (i, q), weight, CALIBRATION_K), t2a_relevant),
        ):
            first = np.array(
                [
                    next(r for r, item in enumerate(order, 1) if item in hit)
                    for order, hit in zip(orders, relevant, strict=True)
                ]
            )
            per_direction.append(np.mean([first <= k for k in (1, 5, 10)], axis=0))
        return per_direction

    scores = [np.mean([direction.mean() for direction in hits(weight)]) for weight in grid]
    assert [row["score"] for row in results["grid"]] == pytest.approx(scores)
    assert len(set(scores)) > 1, "every weight scored the same: the check below would be weak"
    best = [weight for weight, score in zip(grid, scores, strict=True) if score == max(scores)]
    best = best[(len(best) - 1) // 2]
    assert results["best_weight"] == best
    # Kept only when it beats ATC alone by more than one standard error of the paired per-query differences.
    differences = [b - a for a, b in zip(hits(0.0), hits(best), strict=True)]
    gain = np.mean([d.mean() for d in differences])
    error = np.sqrt(sum(d.var(ddof=1) / len(d) for d in differences)) / 2
    assert results["gain_over_atc"] == pytest.approx(gain) and results[
        "gain_standard_error"
    ] == pytest.approx(error)
    assert results["weight"] == (best if gain > error else 0.0)
    # Saved with the model (its weights untouched), and what retrieval then uses.
    assert model.config.rerank_weight == results["weight"] == model.rerank_weight
    retrieval = run_retrieval(manifest, model_copy, tmp_path / "retrieval", options)
    assert retrieval["atm"]["weight"] == results["weight"]
    assert retrieval["atm"]["weight_source"] == "calibrated on a validation split"
    assert "Chosen weight" in (tmp_path / "calibration" / "summary.md").read_text()
    # An explicit weight wins over the saved one.
    explicit = run_retrieval(
        manifest,
        model_copy,
        tmp_path / "explicit",
        RetrieveOptions(k=K, progress=False, workers=0, atm_weight=2.5),
    )
    assert explicit["atm"]["weight"] == 2.5 and explicit["atm"]["weight_source"] == "option"


def test_calibrate_rerank_cli_saves_the_weight_unless_dry_run(model_dir, manifest, tmp_path, capsys):
    model_copy = tmp_path / "model"
    jitter_trainable_(MintModel.from_pretrained(model_dir), 0.2).save_pretrained(model_copy)
    common = ["--no-progress", "--workers", "0", "--device", "cpu", "--k", str(CALIBRATION_K)]
    args = ["eval", "calibrate-rerank", str(manifest), "--model", str(model_copy), *common]
    assert main([*args, "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    assert "not saved" in capsys.readouterr().out
    assert MintModel.from_pretrained(model_copy).config.rerank_weight is None

    assert main([*args, "--out", str(tmp_path / "saved")]) == 0
    chosen = json.loads((tmp_path / "saved" / "results.json").read_text())["weight"]
    assert MintModel.from_pretrained(model_copy).config.rerank_weight == chosen
    # `mint eval retrieve --atm-weight` overrides the saved weight.
    retrieve = ["eval", "retrieve", str(manifest), "--model", str(model_copy), "--out", str(tmp_path / "r")]
    assert main([*retrieve, *common, "--atm-weight", "2.5"]) == 0
    assert "weight 2.5 (option)" in capsys.readouterr().out


def test_calibration_refuses_a_bad_grid(model_dir, manifest, tmp_path):
    with pytest.raises(ConfigError, match="grid"):
        calibrate_rerank(manifest, model_dir, tmp_path, RetrieveOptions(progress=False), grid=(0.0, -1.0))
    with pytest.raises(ConfigError, match="atm_weight"):
        RetrieveOptions(atm_weight=float("nan"))


def _ranked(similarity: np.ndarray, atm: np.ndarray, k: int) -> RankedPairs:
    """Clip i described by caption i alone, ranked by hand-made ATC and ATM scores."""
    clips = similarity.shape[0]
    return RankedPairs(
        kept=list(range(clips)),
        skipped=[],
        similarity=similarity,
        atm=atm,
        a2t_top=top_k(similarity, k),
        t2a_top=top_k(similarity.T, k),
        text_to_audio=np.arange(clips),
        evaluated=0,
    )


def test_a_weight_that_fixes_every_query_is_kept_and_one_within_the_noise_is_not():
    clips = 12
    # ATC puts each clip's caption second, behind the next clip's; ATM knows the true pairs.
    similarity = np.eye(clips) * 0.5 + np.roll(np.eye(clips), 1, axis=1) * 0.6
    atm = np.eye(clips) * 4.0 - 2.0
    choice = choose_weight(_ranked(similarity, atm, k=3), grid=(0.0, 0.1, 1.0))
    # With weight 0.1 the true pair gains 0.4 against a 0.1 deficit: every query moves from rank 2 to 1.
    assert choice["best_weight"] == 0.1 and choice["weight"] == 0.1
    # Per query, R@1 goes 0 -> 1 while R@5 and R@10 stay hit: a third of the score, in both directions.
    assert choice["gain_over_atc"] == pytest.approx(1 / 3)
    assert choice["gain_standard_error"] == pytest.approx(0.0, abs=1e-12)  # every query gains the same

    # ATM puts two true pairs first and pushes one that ATC had first down (in both directions): a gain,
    # but within the noise of twelve queries, so ATC's ranking is kept.
    similarity[5, 5] = 0.7
    mixed = np.zeros((clips, clips))
    mixed[0, 0] = mixed[1, 1] = 1.0  # fixes clips and captions 0 and 1
    mixed[5, 6] = mixed[4, 5] = 1.0  # ranks caption 6 above clip 5's own, clip 4 above caption 5's own
    noisy = choose_weight(_ranked(similarity, mixed, k=2), grid=(0.0, 1.0))
    assert noisy["best_weight"] == 1.0
    # Per direction the per-query gains are +1/3, +1/3, -1/3 and nine zeros.
    differences = np.array([1, 1, -1] + [0] * 9) / 3
    assert noisy["gain_over_atc"] == pytest.approx(differences.mean())
    assert noisy["gain_standard_error"] == pytest.approx(np.sqrt(2 * differences.var(ddof=1) / 12) / 2)
    assert noisy["gain_over_atc"] <= noisy["gain_standard_error"] and noisy["weight"] == 0.0
