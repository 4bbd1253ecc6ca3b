"""Audio captioning of a manifest with a stage-2 model, scored as the field reports it.

Each clip gets one caption generated with a fixed instruction and beam search (`model.generate`); the
captions are written as JSON lines {"id", "candidate", "references"} (the input of
`mint eval caption-metrics`) and scored against the manifest's captions with
`compute_caption_metrics`: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, and SPICE / SPIDEr when a SPICE jar is
given (otherwise reported as unavailable, never as 0). Clips without reference captions are skipped.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mint.data.instructions import TEMPLATES
from mint.errors import ConfigError, DataError
from mint.evaluation.metrics import CAPTION_METRICS, compute_caption_metrics
from mint.evaluation.metrics.spice import check_spice_jar
from mint.evaluation.report import (
    header_markdown,
    markdown_table,
    run_identity,
    write_jsonl,
    write_report,
)
from mint.evaluation.selection import select_records
from mint.inference.embedding import AudioStream, SkippedClip, load_model, resolve_device

# The fixed evaluation instruction: the first caption template of stage-2 training.
DEFAULT_INSTRUCTION = TEMPLATES["caption"][0]
PREDICTIONS_NAME = "captions.jsonl"


@dataclass
class CaptionOptions:
    instruction: str = DEFAULT_INSTRUCTION
    num_beams: int = 5
    max_new_tokens: int = 30
    min_new_tokens: int = 1
    length_penalty: float = 1.0
    spice_jar: str | None = None
    batch_size: int = 16
    workers: int = 2
    device: str = "auto"
    folds: list[int] | None = None
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"num_beams: expected a positive integer, got {self.num_beams}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens or self.max_new_tokens < 1:
            raise ConfigError(
                f"min_new_tokens / max_new_tokens: expected 0 <= min <= max and max >= 1, got "
                f"{self.min_new_tokens} and {self.max_new_tokens}"
            )

    def generation_kwargs(self) -> dict:
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "length_penalty": self.length_penalty,
        }


def _summary(results: dict) -> str:
    metrics = results["metrics"]
    lines = header_markdown("Audio captioning", results)
    lines.append(markdown_table(["metric", "score"], [[name, metrics[name]] for name in CAPTION_METRICS]))
    for name, reason in metrics["unavailable"].items():
        lines += ["", f"* {name}: {reason}"]
    lines += ["", f"Generated captions: `{results['predictions']}`"]
    return "\n".join(lines)


def run_captioning(
    manifest: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: CaptionOptions | None = None,
) -> dict:
    """Caption every selected clip, write the captions, results.json and summary.md; return the results."""
    options = options or CaptionOptions()
    if options.spice_jar is not None:
        # Checked before hours of generation, not after.
        check_spice_jar(options.spice_jar)
    selection = select_records(manifest, options.folds, options.limit)
    records = [record for record in selection.records if record.captions]
    skipped = [SkippedClip(r.id, r.audio, "no captions") for r in selection.records if not r.captions]
    if not records:
        raise DataError(f"{manifest}: no selected clip has reference captions")
    model = load_model(model_dir, resolve_device(options.device))
    if getattr(model.config, "llm", None) is None:
        raise ConfigError(f"{model_dir}: a stage-1 model (no LLM) cannot caption; give a stage-2 model")
    stream = AudioStream(model, records, options.batch_size, options.workers, options.progress, "caption")
    rows = []
    with torch.no_grad():
        for batch in stream:
            instructions = [options.instruction] * len(batch.indices)
            texts = model.generate(batch.audio, instructions, **options.generation_kwargs())
            for index, text in zip(batch.indices, texts, strict=True):
                record = records[index]
                rows.append({"id": record.id, "candidate": text, "references": list(record.captions)})
    if not rows:
        raise DataError(f"no readable audio among the {len(records)} captioned clips")
    out = Path(out_dir)
    write_jsonl(out / PREDICTIONS_NAME, rows)
    metrics = compute_caption_metrics(
        {row["id"]: row["candidate"] for row in rows},
        {row["id"]: row["references"] for row in rows},
        options.spice_jar,
    )
    results = {
        "task": "captioning",
        **run_identity(
            manifest, model_dir, model, selection, len(rows), asdict(options), [*skipped, *stream.skipped]
        ),
        "metrics": metrics,
        "predictions": PREDICTIONS_NAME,
    }
    write_report(out, results, _summary(results))
    return results
