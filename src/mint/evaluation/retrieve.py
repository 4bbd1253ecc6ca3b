"""Audio-text retrieval in both directions: ATC ranking of all pairs, then ATM re-ranking of the top k.

Protocol of AudioCaps / Clotho (see `mint.evaluation.metrics.retrieval`): every clip comes with its
captions; audio->text is a hit when any of the clip's captions is within the top k, text->audio is
scored per caption. Clips without captions are skipped and reported.

Cost. ATC embeds every clip and caption once and compares them all (a matrix product). ATM, a joint
pass through the Bridge-Net per pair, scores only the distinct pairs in the union of every clip's top-k
captions and every caption's top-k clips under ATC: a pair found from both sides is scored once, so
the count recorded in the results is at most N_audio * k + N_text * k and never grows with
N_audio * N_text.

Re-ranking. A re-ranked pair's score is `rerank_score`: ATC similarity + w x ATM log-odds, the log-odds
being logit[match] - logit[no match] (the match probability's order, without its saturation at 1.0).
w is `RetrieveOptions.atm_weight` when given, else the model's (`MintModel.rerank_weight`: the weight
`calibrate_rerank` chose on a validation split and saved with the model, or the model's temperature
before that); `mint.inference.search` scores the same way. Each direction gets its own score matrix: a
query's top-k items take that score + an offset putting every re-ranked item above every other one,
while the rest keep their ATC similarity and so their ATC order. The same `retrieval_metrics` then
scores ATC alone and ATC+ATM. `rankings.jsonl` lists every query's first ten items under both.

Calibration (`calibrate_rerank`): the same ranking of a validation manifest, re-ranked with every w of a
grid from 0 (ATC alone) up; the w with the best mean of R@1, R@5 and R@10 over both directions is
written into the saved model's config, where retrieval, search and the server read it, unless its gain
over ATC alone is within one standard error of the per-query differences: a gain that small is the
validation split's noise (in ESC-10 classification, the weight that did best on fold 4's 80 clips made
fold 5 five points worse than ATC alone), and w = 0 then keeps ATC's ranking.

The encoder features of the first pass are spilled to a temporary folder inside the output folder
(removed at the end), so the ATM pass reads them back instead of decoding and encoding audio again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mint.errors import ConfigError, DataError
from mint.evaluation.metrics import retrieval_metrics
from mint.evaluation.metrics.retrieval import ranked_relevance
from mint.evaluation.plots import plot_recall_curves
from mint.evaluation.report import (
    header_markdown,
    markdown_table,
    run_identity,
    write_jsonl,
    write_report,
)
from mint.evaluation.selection import Selection, select_records
from mint.inference.embedding import (
    AudioBatch,
    AudioStream,
    SkippedClip,
    embed_texts,
    load_model,
    resolve_device,
)
from mint.modeling import MintModel
from mint.modeling.outputs import AudioFeatures
from mint.objectives.contrastive import audio_text_similarity
from mint.objectives.matching import match_log_odds, rerank_score

RECALL_PNG = "recall_at_k.png"
RANKINGS_NAME = "rankings.jsonl"
RANKINGS_LISTED = 10
DIRECTIONS = ("audio_to_text", "text_to_audio")
# Re-ranking weights `calibrate_rerank` tries: ATC alone, then ATM's share from a hundredth of the
# temperature scale (~0.07) to far beyond ATC's [-1, 1] range (ATM alone, in effect).
CALIBRATION_GRID = (0.0, *(float(w) for w in np.geomspace(1e-3, 10.0, 25)))
CALIBRATION_RECALLS = ("R@1", "R@5", "R@10")


@dataclass
class RetrieveOptions:
    k: int = 128
    batch_size: int = 16
    text_batch_size: int = 64
    pair_batch_size: int = 64
    workers: int = 2
    device: str = "auto"
    folds: list[int] | None = None
    limit: int | None = None
    progress: bool = True
    # w of the re-ranking score ATC similarity + w x ATM log-odds; None: the model's (`MintModel.rerank_weight`).
    atm_weight: float | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k: expected a positive number of items to re-rank, got {self.k}")
        if self.pair_batch_size < 1:
            raise ConfigError(f"pair_batch_size: expected a positive integer, got {self.pair_batch_size}")
        if self.atm_weight is not None and not (math.isfinite(self.atm_weight) and self.atm_weight >= 0):
            raise ConfigError(f"atm_weight: expected a finite number >= 0, got {self.atm_weight}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices [rows, min(k, columns)] of each row's k highest scores; ties to the lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def pairs_to_score(a2t_top: np.ndarray, t2a_top: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [N_audio, N_text]: the union of each clip's top captions and each caption's top clips."""
    needed = np.zeros(shape, dtype=bool)
    needed[np.arange(shape[0])[:, None], a2t_top] = True
    needed[t2a_top, np.arange(shape[1])[:, None]] = True
    return needed


def rerank_rows(similarity: np.ndarray, top: np.ndarray, atm: np.ndarray, weight: float) -> np.ndarray:
    """`similarity` (float64) with each row's `top` columns moved above all others, in the order of
    `rerank_score` (ATC similarity + `weight` x ATM log-odds)."""
    reranked = similarity.astype(np.float64)
    rows = np.arange(similarity.shape[0])[:, None]
    scores = rerank_score(reranked[rows, top], atm[rows, top], weight)
    reranked[rows, top] = scores + (reranked.max() - scores.min() + 1.0)
    return reranked


class _FeatureSpill:
    """Encoder-feature batches written once and read back in the same order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: list[Path] = []

    def write(self, batch: AudioBatch) -> None:
        path = self.directory / f"batch-{len(self.files):07d}.safetensors"
        tensors = {
            "features": batch.audio.features.contiguous().cpu(),
            "mask": batch.audio.mask.contiguous().cpu(),
            "indices": torch.tensor(batch.indices, dtype=torch.long),
        }
        save_file(tensors, str(path))
        self.files.append(path)

    def read(self, device: torch.device) -> Iterator[tuple[int, AudioFeatures]]:
        """(number of clips, features) per batch; clip rows continue where the previous batch ended."""
        for path in self.files:
            tensors = load_file(str(path))
            yield (
                len(tensors["indices"]),
                AudioFeatures(tensors["features"].to(device), tensors["mask"].to(device)),
            )


@torch.no_grad()
def atm_scores(
    model: MintModel,
    spill: _FeatureSpill,
    captions: list[str],
    needed: np.ndarray,
    pair_batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, int]:
    """ATM log-odds [N_audio, N_text] (NaN where not needed) and the number of pairs evaluated."""
    device = model.audio_proj.weight.device
    scores = np.full(needed.shape, np.nan, dtype=np.float64)
    evaluated = 0
    first_row = 0
    with tqdm(total=int(needed.sum()), desc="ATM re-ranking", unit="pair", disable=not progress) as bar:
        for clips, audio in spill.read(device):
            local, texts = np.nonzero(needed[first_row : first_row + clips])
            for start in range(0, len(local), pair_batch_size):
                rows = local[start : start + pair_batch_size]
                columns = texts[start : start + pair_batch_size]
                selected = torch.from_numpy(rows).to(device)
                pair_audio = AudioFeatures(audio.features[selected], audio.mask[selected])
                ids, mask = model.tokenize([captions[column] for column in columns], device=device)
                logits = model.match_logits(pair_audio, ids, mask).float()
                scores[first_row + rows, columns] = match_log_odds(logits).cpu().numpy()
                evaluated += len(rows)
                bar.update(len(rows))
            first_row += clips
    return scores, evaluated


def recall_curve(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Recall@k for k = 1 .. gallery size, queries as rows (pessimistic ties, as the metrics)."""
    first_rank = np.argmax(ranked_relevance(scores, relevant), axis=1) + 1
    return np.cumsum(np.bincount(first_rank, minlength=scores.shape[1] + 1)[1:]) / len(first_rank)


def _rankings(kept: list, similarity: np.ndarray, reranked: dict[str, np.ndarray]) -> list[dict]:
    """Each query's first items under ATC and ATC+ATM; a caption is named `<clip id>/<its position>`."""
    clips = [record.id for record in kept]
    captions = [(f"{record.id}/{n}", text) for record in kept for n, text in enumerate(record.captions)]
    rows = []
    a2t = {
        "atc": top_k(similarity, RANKINGS_LISTED),
        "atc+atm": top_k(reranked["audio_to_text"], RANKINGS_LISTED),
    }
    for row, clip in enumerate(clips):
        ranked = {method: [captions[column][0] for column in top[row]] for method, top in a2t.items()}
        rows.append({"direction": "audio_to_text", "query": clip, **ranked})
    t2a = {
        "atc": top_k(similarity.T, RANKINGS_LISTED),
        "atc+atm": top_k(reranked["text_to_audio"].T, RANKINGS_LISTED),
    }
    for column, (name, text) in enumerate(captions):
        ranked = {method: [clips[row] for row in top[column]] for method, top in t2a.items()}
        rows.append({"direction": "text_to_audio", "query": name, "text": text, **ranked})
    return rows


def _captioned(records: list) -> tuple[list, list[SkippedClip]]:
    kept = [record for record in records if record.captions]
    skipped = [SkippedClip(r.id, r.audio, "no captions") for r in records if not r.captions]
    return kept, skipped


@dataclass
class RankedPairs:
    """A manifest's clips and captions ranked by ATC, with the ATM log-odds that re-ranking reads."""

    kept: list  # the records evaluated, in row order
    skipped: list[SkippedClip]
    similarity: np.ndarray  # [N_audio, N_text] ATC similarity
    atm: np.ndarray  # [N_audio, N_text] ATM log-odds, NaN where no top-k list needs it
    a2t_top: np.ndarray  # [N_audio, k] each clip's top captions under ATC
    t2a_top: np.ndarray  # [N_text, k] each caption's top clips under ATC
    text_to_audio: np.ndarray  # [N_text] the clip each caption describes
    evaluated: int  # ATM pair evaluations

    def reranked(self, weight: float) -> dict[str, np.ndarray]:
        """Per direction, the score matrix after re-ranking each query's top k with `weight`."""
        return {
            "audio_to_text": rerank_rows(self.similarity, self.a2t_top, self.atm, weight),
            "text_to_audio": rerank_rows(self.similarity.T, self.t2a_top, self.atm.T, weight).T,
        }

    def metrics(self, weight: float) -> dict[str, dict]:
        """`retrieval_metrics` of ATC alone ("atc") and after re-ranking with `weight` ("atc+atm")."""
        reranked = self.reranked(weight)
        return {
            "atc": retrieval_metrics(self.similarity, self.text_to_audio),
            "atc+atm": {
                direction: retrieval_metrics(reranked[direction], self.text_to_audio)[direction]
                for direction in DIRECTIONS
            },
        }


def rank_pairs(
    model: MintModel, records: list, options: RetrieveOptions, work_dir: str | os.PathLike
) -> RankedPairs:
    """ATC similarities of every clip and caption of `records`, and ATM log-odds of the union of every
    clip's top-k captions and every caption's top-k clips. Encoder features are spilled to a temporary
    folder inside `work_dir` between the two passes."""
    kept_records, skipped = _captioned(records)
    if not kept_records:
        raise DataError("no selected clip has a caption; retrieval needs captioned clips")
    stream = AudioStream(
        model, kept_records, options.batch_size, options.workers, options.progress, "retrieve"
    )
    with tempfile.TemporaryDirectory(prefix=".features-", dir=work_dir) as spill_dir, torch.no_grad():
        spill = _FeatureSpill(Path(spill_dir))
        chunks, indices = [], []
        for batch in stream:
            chunks.append(model.audio_embeddings(batch.audio).float().cpu())
            indices.extend(batch.indices)
            spill.write(batch)
        if not chunks:
            raise DataError(f"no readable audio among the {len(kept_records)} captioned clips")
        kept = [kept_records[index] for index in indices]
        captions = [caption for record in kept for caption in record.captions]
        text_to_audio = np.array([row for row, record in enumerate(kept) for _ in record.captions])
        text = embed_texts(model, captions, options.text_batch_size)
        similarity = audio_text_similarity(torch.cat(chunks), text).double().numpy()
        a2t_top = top_k(similarity, options.k)
        t2a_top = top_k(similarity.T, options.k)
        needed = pairs_to_score(a2t_top, t2a_top, similarity.shape)
        atm, evaluated = atm_scores(model, spill, captions, needed, options.pair_batch_size, options.progress)
    return RankedPairs(
        kept, [*skipped, *stream.skipped], similarity, atm, a2t_top, t2a_top, text_to_audio, evaluated
    )


def rerank_weight(model: MintModel, atm_weight: float | None = None) -> tuple[float, str]:
    """The re-ranking weight a run uses (`atm_weight` when given, else the model's) and where it comes from."""
    if atm_weight is not None:
        return atm_weight, "option"
    if model.config.rerank_weight is not None:
        return model.rerank_weight, "calibrated on a validation split"
    return model.rerank_weight, "the model's temperature (not calibrated)"


def _summary(results: dict) -> str:
    lines = header_markdown("Audio-text retrieval", results)
    atm = results["atm"]
    lines += [
        f"{results['counts']['audio']} clips, {results['counts']['captions']} captions; ATM re-ranked the "
        f"top {atm['k']} with {atm['pair_evaluations']} pair evaluations (of {atm['all_pairs']} pairs), "
        f"score = ATC similarity + {atm['weight']:.4g} x ATM log-odds (weight: {atm['weight_source']}).",
        "",
    ]
    columns = ["R@1", "R@5", "R@10", "mAP@10", "median_rank", "mean_rank"]
    rows = [
        [method, direction.replace("_", " "), *[metrics[direction][name] for name in columns]]
        for method, metrics in results["metrics"].items()
        for direction in DIRECTIONS
    ]
    lines.append(markdown_table(["method", "direction", *columns], rows))
    if results["plots"]["recall_at_k"]:
        lines += ["", f"![recall@k]({results['plots']['recall_at_k']})"]
    return "\n".join(lines)


def _open_run(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RetrieveOptions,
) -> tuple[Selection, MintModel, Path]:
    """The manifest's selected records (refused before the model loads when none has a caption), the loaded
    model and the created output folder."""
    selection = select_records(manifest, options.folds, options.limit)
    if not any(record.captions for record in selection.records):
        raise DataError(f"{manifest}: no selected clip has a caption; retrieval needs captioned clips")
    model = load_model(model_dir, resolve_device(options.device))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return selection, model, out


def _results_header(
    task: str,
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    model: MintModel,
    selection: Selection,
    options: RetrieveOptions,
    ranked: RankedPairs,
) -> dict:
    """What every retrieval results.json starts with: task, model, data, options, software, skips, counts."""
    n_audio, n_text = ranked.similarity.shape
    return {
        "task": task,
        **run_identity(manifest, model_dir, model, selection, n_audio, asdict(options), ranked.skipped),
        "counts": {"audio": n_audio, "captions": n_text},
    }


def run_retrieval(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RetrieveOptions | None = None,
) -> dict:
    """Rank, re-rank, score and write results.json, summary.md and the recall@k plot; return the results."""
    options = options or RetrieveOptions()
    selection, model, out = _open_run(manifest, model_dir, out_dir, options)
    ranked = rank_pairs(model, selection.records, options, out)
    weight, source = rerank_weight(model, options.atm_weight)
    reranked = ranked.reranked(weight)
    similarity, kept = ranked.similarity, ranked.kept
    relevant = ranked.text_to_audio[None, :] == np.arange(len(kept))[:, None]
    curves = {
        "audio_to_text": {
            "ATC": recall_curve(similarity, relevant),
            "ATC+ATM": recall_curve(reranked["audio_to_text"], relevant),
        },
        "text_to_audio": {
            "ATC": recall_curve(similarity.T, relevant.T),
            "ATC+ATM": recall_curve(reranked["text_to_audio"].T, relevant.T),
        },
    }
    plotted = plot_recall_curves(curves, out / RECALL_PNG)
    write_jsonl(out / RANKINGS_NAME, _rankings(kept, similarity, reranked))
    n_audio, n_text = similarity.shape
    results = {
        **_results_header("retrieval", manifest, model_dir, model, selection, options, ranked),
        "atm": {
            "k": options.k,
            "pair_evaluations": ranked.evaluated,
            "bound": n_audio * min(options.k, n_text) + n_text * min(options.k, n_audio),
            "all_pairs": n_audio * n_text,
            "score": "ATC similarity + weight x ATM log-odds (logit[match] - logit[no match])",
            "weight": weight,
            "weight_source": source,
        },
        "metrics": ranked.metrics(weight),
        "plots": {"recall_at_k": RECALL_PNG if plotted else None},
        "rankings": RANKINGS_NAME,
    }
    write_report(out, results, _summary(results))
    return results


def query_hits(ranked: RankedPairs, weight: float) -> dict[str, np.ndarray]:
    """Per direction, each query's share of R@1, R@5 and R@10 it hits after re-ranking with `weight`: their
    mean over a direction's queries is the mean of its three recalls."""
    reranked = ranked.reranked(weight)
    relevant = ranked.text_to_audio[None, :] == np.arange(ranked.similarity.shape[0])[:, None]
    hits = {}
    for direction, scores, rows in (
        ("audio_to_text", reranked["audio_to_text"], relevant),
        ("text_to_audio", reranked["text_to_audio"].T, relevant.T),
    ):
        first_rank = np.argmax(ranked_relevance(scores, rows), axis=1) + 1
        cutoffs = [int(name.removeprefix("R@")) for name in CALIBRATION_RECALLS]
        hits[direction] = np.mean([first_rank <= k for k in cutoffs], axis=0)
    return hits


def calibration_score(hits: dict[str, np.ndarray]) -> float:
    """What calibration maximises: the mean of R@1, R@5 and R@10 over both directions."""
    return float(np.mean([hits[direction].mean() for direction in DIRECTIONS]))


def _gain_and_error(hits: dict[str, np.ndarray], atc: dict[str, np.ndarray]) -> tuple[float, float]:
    """The score's gain over ATC alone and its standard error, from the per-query differences (paired:
    the same queries under both rankings)."""
    gain, variance = 0.0, 0.0
    for direction in DIRECTIONS:
        difference = hits[direction] - atc[direction]
        gain += difference.mean() / len(DIRECTIONS)
        variance += (
            difference.var(ddof=1) / len(difference) / len(DIRECTIONS) ** 2 if len(difference) > 1 else 0.0
        )
    return float(gain), float(np.sqrt(variance))


def _best_weight(scores: Sequence[float], grid: Sequence[float]) -> float:
    """The best-scoring weight; among equal best, the middle one of them (a plateau's centre, not its edge)."""
    best = max(scores)
    tied = [weight for weight, score in zip(grid, scores, strict=True) if score == best]
    return tied[(len(tied) - 1) // 2]


def choose_weight(ranked: RankedPairs, grid: Sequence[float]) -> dict:
    """The re-ranking weight for `ranked` (a validation split): the best of `grid` by `calibration_score`,
    or 0 when its gain over ATC alone is within one standard error. Returns the chosen `weight`, the
    `best_weight`, `gain_over_atc`, `gain_standard_error` and the `grid` rows (weight, score, metrics)."""
    hits = {float(weight): query_hits(ranked, weight) for weight in grid}
    rows = [
        {
            "weight": weight,
            "score": calibration_score(hits[weight]),
            "metrics": ranked.metrics(weight)["atc+atm"],
        }
        for weight in hits
    ]
    best = _best_weight([row["score"] for row in rows], [row["weight"] for row in rows])
    gain, error = _gain_and_error(hits[best], query_hits(ranked, 0.0))
    return {
        "weight": best if gain > error else 0.0,
        "best_weight": best,
        "gain_over_atc": gain,
        "gain_standard_error": error,
        "grid": rows,
    }


def _calibration_summary(results: dict) -> str:
    lines = header_markdown("Re-ranking weight calibration", results)
    lines += [
        f"Chosen weight {results['weight']:.4g} (score = ATC similarity + weight x ATM log-odds). The best mean "
        f"of R@1, R@5, R@10 over both directions on {results['counts']['audio']} validation clips came with "
        f"weight {results['best_weight']:.4g}: {results['gain_over_atc']:+.4f} over ATC alone, standard error "
        f"{results['gain_standard_error']:.4f}"
        + (f"; written to {results['saved_to']}." if results["saved_to"] else "; not saved."),
        "",
    ]
    rows = [
        [f"{row['weight']:.4g}", f"{row['score']:.4f}"]
        + [row["metrics"][d][name] for d in ("text_to_audio", "audio_to_text") for name in ("R@1", "R@5")]
        for row in results["grid"]
    ]
    headers = ["weight", "mean R", "t2a R@1", "t2a R@5", "a2t R@1", "a2t R@5"]
    lines.append(markdown_table(headers, rows))
    return "\n".join(lines)


def calibrate_rerank(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RetrieveOptions | None = None,
    grid: Sequence[float] = CALIBRATION_GRID,
    save: bool = True,
) -> dict:
    """Choose the re-ranking weight on a validation manifest (never the test one) and, with `save`, write it
    into the saved model's config (`rerank_weight`), so that `run_retrieval`, `MintPipeline.search` and the
    server use it. Writes results.json and summary.md (every weight tried) to `out_dir`; returns the results."""
    options = options or RetrieveOptions()
    if not grid or any(not (math.isfinite(w) and w >= 0) for w in grid):
        raise ConfigError(f"grid: expected finite weights >= 0, got {list(grid)}")
    selection, model, out = _open_run(manifest, model_dir, out_dir, options)
    ranked = rank_pairs(model, selection.records, options, out)
    choice = choose_weight(ranked, grid)
    weight = choice["weight"]
    if save:
        model.config = dataclasses.replace(model.config, rerank_weight=weight)
        model.save_pretrained(model_dir)
    results = {
        **_results_header("rerank calibration", manifest, model_dir, model, selection, options, ranked),
        "criterion": "mean of R@1, R@5, R@10 over audio->text and text->audio after re-ranking the top k; "
        "the best weight unless its gain over ATC alone is within one standard error (then 0)",
        **choice,
        "saved_to": str(Path(model_dir).resolve()) if save else None,
        "metrics": ranked.metrics(weight),
    }
    write_report(out, results, _calibration_summary(results))
    return results
