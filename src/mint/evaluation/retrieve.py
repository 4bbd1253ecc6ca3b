"""Audio-text retrieval in both directions: ATC ranking of all pairs, then ATM re-ranking of the top k.

Protocol of AudioCaps / Clotho (see `mint.evaluation.metrics.retrieval`): every clip comes with its
captions; audio->text is a hit when any of the clip's captions is within the top k, text->audio is
scored per caption. Clips without captions are skipped and reported.

Cost. ATC embeds every clip and caption once and compares them all (a matrix product). ATM, a joint
pass through the Bridge-Net per pair, scores only the distinct pairs in the union of every clip's top-k
captions and every caption's top-k clips under ATC: a pair found from both sides is scored once, so
the count recorded in the results is at most N_audio * k + N_text * k and never grows with
N_audio * N_text.

Re-ranking. The ATM score of a pair is the log-odds of its match probability, logit[match] -
logit[no match] (the probability's order, without its saturation at 1.0). Each direction gets its
own score matrix: a query's top-k items take ATM score + offset, the offset putting every re-ranked
item above every other one (offset = highest ATC similarity - lowest re-ranked ATM score + 1), while
the rest keep their ATC similarity and so their ATC order. The same `retrieval_metrics` then scores
ATC alone and ATC+ATM. `rankings.jsonl` lists every query's first ten items under both.

The encoder features of the first pass are spilled to a temporary folder inside the output folder
(removed at the end), so the ATM pass reads them back instead of decoding and encoding audio again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mint.errors import ConfigError, DataError
from mint.evaluation.embed import (
    AudioBatch,
    AudioStream,
    SkippedClip,
    embed_texts,
    load_model,
    resolve_device,
    select_records,
)
from mint.evaluation.metrics import retrieval_metrics
from mint.evaluation.metrics.retrieval import ranked_relevance
from mint.evaluation.plots import plot_recall_curves
from mint.evaluation.report import (
    data_identity,
    header_markdown,
    markdown_table,
    model_identity,
    skipped_report,
    software_versions,
    write_jsonl,
    write_report,
)
from mint.modeling import MintModel
from mint.modeling.outputs import AudioFeatures
from mint.objectives.contrastive import audio_text_similarity

RECALL_PNG = "recall_at_k.png"
RANKINGS_NAME = "rankings.jsonl"
RANKINGS_LISTED = 10
DIRECTIONS = ("audio_to_text", "text_to_audio")


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

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k: expected a positive number of items to re-rank, got {self.k}")
        if self.pair_batch_size < 1:
            raise ConfigError(f"pair_batch_size: expected a positive integer, got {self.pair_batch_size}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices [rows, min(k, columns)] of each row's k highest scores; ties to the lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def pairs_to_score(a2t_top: np.ndarray, t2a_top: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [N_audio, N_text]: the union of each clip's top captions and each caption's top clips."""
    needed = np.zeros(shape, dtype=bool)
    needed[np.arange(shape[0])[:, None], a2t_top] = True
    needed[t2a_top, np.arange(shape[1])[:, None]] = True
    return needed


def rerank_rows(similarity: np.ndarray, top: np.ndarray, atm: np.ndarray) -> np.ndarray:
    """`similarity` (float64) with each row's `top` columns moved above all others, in ATM order."""
    reranked = similarity.astype(np.float64)
    rows = np.arange(similarity.shape[0])[:, None]
    scores = atm[rows, top]
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
                scores[first_row + rows, columns] = (logits[:, 1] - logits[:, 0]).cpu().numpy()
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


def _summary(results: dict) -> str:
    lines = header_markdown("Audio-text retrieval", results)
    atm = results["atm"]
    lines += [
        f"{results['counts']['audio']} clips, {results['counts']['captions']} captions; ATM re-ranked the "
        f"top {atm['k']} with {atm['pair_evaluations']} pair evaluations (of {atm['all_pairs']} pairs).",
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


def run_retrieval(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: RetrieveOptions | None = None,
) -> dict:
    """Rank, re-rank, score and write results.json, summary.md and the recall@k plot; return the results."""
    options = options or RetrieveOptions()
    selection = select_records(manifest, options.folds, options.limit)
    records, skipped = _captioned(selection.records)
    if not records:
        raise DataError(f"{manifest}: no selected clip has a caption; retrieval needs captioned clips")
    model = load_model(model_dir, resolve_device(options.device))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = AudioStream(model, records, options.batch_size, options.workers, options.progress, "retrieve")
    with tempfile.TemporaryDirectory(prefix=".features-", dir=out) as spill_dir, torch.no_grad():
        spill = _FeatureSpill(Path(spill_dir))
        chunks, indices = [], []
        for batch in stream:
            chunks.append(model.audio_embeddings(batch.audio).float().cpu())
            indices.extend(batch.indices)
            spill.write(batch)
        if not chunks:
            raise DataError(f"no readable audio among the {len(records)} captioned clips")
        kept = [records[index] for index in indices]
        captions = [caption for record in kept for caption in record.captions]
        text_to_audio = np.array([row for row, record in enumerate(kept) for _ in record.captions])
        text = embed_texts(model, captions, options.text_batch_size)
        similarity = audio_text_similarity(torch.cat(chunks), text).double().numpy()
        a2t_top = top_k(similarity, options.k)
        t2a_top = top_k(similarity.T, options.k)
        needed = pairs_to_score(a2t_top, t2a_top, similarity.shape)
        atm, evaluated = atm_scores(model, spill, captions, needed, options.pair_batch_size, options.progress)

    reranked = {
        "audio_to_text": rerank_rows(similarity, a2t_top, atm),
        "text_to_audio": rerank_rows(similarity.T, t2a_top, atm.T).T,
    }
    atc_metrics = retrieval_metrics(similarity, text_to_audio)
    metrics = {
        "atc": atc_metrics,
        "atc+atm": {
            direction: retrieval_metrics(reranked[direction], text_to_audio)[direction]
            for direction in DIRECTIONS
        },
    }
    relevant = text_to_audio[None, :] == np.arange(len(kept))[:, None]
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
        "task": "retrieval",
        "model": model_identity(model_dir, model),
        "data": data_identity(manifest, selection, n_audio),
        "options": asdict(options),
        "software": software_versions(),
        "skipped": skipped_report([*skipped, *stream.skipped]),
        "counts": {"audio": n_audio, "captions": n_text},
        "atm": {
            "k": options.k,
            "pair_evaluations": evaluated,
            "bound": n_audio * min(options.k, n_text) + n_text * min(options.k, n_audio),
            "all_pairs": n_audio * n_text,
            "score": "log-odds of the match probability (logit[match] - logit[no match])",
        },
        "metrics": metrics,
        "plots": {"recall_at_k": RECALL_PNG if plotted else None},
        "rankings": RANKINGS_NAME,
    }
    write_report(out, results, _summary(results))
    return results
