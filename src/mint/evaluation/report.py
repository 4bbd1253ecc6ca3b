"""What every evaluation writes: `results.json`, `summary.md`, and the identity of model, data and options.

A result is only comparable with another when both say which weights, which data and which settings
produced them, so every run records the model path and the SHA-256 of its weights (from the digests
saved with the model), the manifest path, its SHA-256 and its clip counts, and the resolved options.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

import mint
from mint.errors import CheckpointError
from mint.evaluation.selection import Selection
from mint.inference.embedding import SkippedClip
from mint.modeling import MintModel
from mint.storage import DIGESTS_NAME, atomic_write_text, sha256_file

RESULTS_NAME = "results.json"
SUMMARY_NAME = "summary.md"
WEIGHTS_NAME = "model.safetensors"
# How many skipped clips are listed by name; the rest are only counted.
SKIPPED_LISTED = 20


def model_identity(model_dir: str | os.PathLike, model: MintModel) -> dict:
    """Path, weights digest (as recorded in checksums.json at save time) and what the model is built of."""
    directory = Path(model_dir).resolve()
    try:
        digests = json.loads((directory / DIGESTS_NAME).read_text())["files"]
        weights = digests[WEIGHTS_NAME]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{directory}: no digest of {WEIGHTS_NAME} in {DIGESTS_NAME}") from None
    llm = getattr(model.config, "llm", None)
    return {
        "path": str(directory),
        "weights_sha256": weights,
        "encoder": model.config.encoder.kind,
        "encoder_name_or_path": model.config.encoder.name_or_path,
        "llm": getattr(llm, "name_or_path", None),
    }


def data_identity(manifest: str | os.PathLike, selection: Selection, evaluated: int) -> dict:
    path = Path(manifest).resolve()
    return {
        "manifest": str(path),
        "manifest_sha256": sha256_file(path),
        "clips_in_manifest": selection.total_in_manifest,
        "clips_selected": len(selection.records),
        "clips_evaluated": evaluated,
    }


def software_versions() -> dict:
    return {"mint": mint.__version__, "torch": torch.__version__}


def skipped_report(skipped: Sequence[SkippedClip]) -> dict:
    """Count per reason, and the first `SKIPPED_LISTED` clips with their detail."""
    return {
        "count": len(skipped),
        "by_reason": dict(Counter(clip.reason for clip in skipped)),
        "first": [
            {"id": clip.id, "audio": clip.audio, "reason": clip.reason, "detail": clip.detail}
            for clip in skipped[:SKIPPED_LISTED]
        ],
    }


def run_identity(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    model: MintModel,
    selection: Selection,
    evaluated: int,
    options: dict,
    skipped: Sequence[SkippedClip],
) -> dict:
    """What every runner's results.json records after its task: model, data, options, software, skips."""
    return {
        "model": model_identity(model_dir, model),
        "data": data_identity(manifest, selection, evaluated),
        "options": options,
        "software": software_versions(),
        "skipped": skipped_report(skipped),
    }


def format_number(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return format_number(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines)


def header_markdown(title: str, results: dict) -> list[str]:
    """The summary's opening: what was evaluated, on what, and what was skipped."""
    model, data, skipped = results["model"], results["data"], results["skipped"]
    lines = [
        f"# {title}",
        "",
        f"* model: `{model['path']}` (weights sha256 `{model['weights_sha256'][:16]}…`)",
        f"* data: `{data['manifest']}` (sha256 `{data['manifest_sha256'][:16]}…`), "
        f"{data['clips_evaluated']} of {data['clips_selected']} selected clips evaluated "
        f"({data['clips_in_manifest']} in the manifest)",
    ]
    if skipped["count"]:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in skipped["by_reason"].items())
        names = ", ".join(f"`{clip['id']}`" for clip in skipped["first"][:5])
        lines.append(f"* skipped {skipped['count']} clip(s) ({reasons}); first: {names}")
    lines.append("")
    return lines


def write_report(out_dir: str | os.PathLike, results: dict, summary: str) -> Path:
    """Write results.json and summary.md into `out_dir` (each atomically); returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RESULTS_NAME, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / SUMMARY_NAME, summary.rstrip("\n") + "\n")
    return out


def write_jsonl(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, text)
