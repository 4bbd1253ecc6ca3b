"""What every benchmark shares: timing, the row it reports, the machine facts, random checkpoints."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# configs/pretrain/tiny.yaml's model before it moved to real weights: the weight-free mel front end and a
# scratch Bridge-Net of hidden 128. Benchmarks of small shapes keep timing these (overrides of tiny.yaml).
WEIGHT_FREE_TINY = [
    "model.encoder.kind=mel",
    "model.encoder.name_or_path=null",
    "model.encoder.window_seconds=null",
    "model.encoder.hidden_size=128",
    "model.bridge.init=scratch",
    "model.bridge.hidden_size=128",
    "model.bridge.num_layers=2",
    "model.bridge.num_heads=4",
    "model.bridge.intermediate_size=256",
]


@dataclass
class Comparison:
    """One line of the ratio table: the same work done two ways, timed in the same run."""

    item: str
    baseline: str
    ours: str
    baseline_s: float
    ours_s: float
    target: float | None = None  # the speed-up asked for, if any
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        return "met" if self.ratio >= self.target else "NOT met"


def stage1_batch(model, captions: list[str], frames: int, seed: int):
    """A stage-1 step's input for `model`: the captions tokenised (each its own content), random stand-in
    encoder features of `frames` frames, and a hard-negative generator seeded with `seed`."""
    import torch

    from mint.modeling.outputs import Stage1Batch
    from mint.objectives import ContentKeys, caption_key

    generator = torch.Generator().manual_seed(seed)
    ids, mask = model.tokenize(captions)
    keys = ContentKeys.from_rows(
        [caption_key(text) for text in captions],
        [[caption_key(text)] for text in captions],
        [[row] for row in range(len(captions))],
    )
    return Stage1Batch(
        input_ids=ids,
        attention_mask=mask,
        keys=keys,
        generator=torch.Generator().manual_seed(seed),
        features=torch.randn(len(captions), frames, model.encoder.hidden_size, generator=generator),
        feature_mask=torch.ones(len(captions), frames, dtype=torch.bool),
    )


def median_seconds(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `function` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_facts() -> dict[str, str]:
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total_kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{total_kib / 2**20:.1f} GiB"
    return {
        "cpu": f"{model}, {os.cpu_count()} logical cores",
        "memory": memory,
        "torch threads": str(torch.get_num_threads()),
        "load average (1 min) at the end": f"{os.getloadavg()[0]:.1f}",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "os": platform.platform(),
    }


def save_random_whisper_tiny(directory: Path) -> Path:
    """A Whisper checkpoint of whisper-tiny's shapes (d_model 384, 4+4 layers) with random weights."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=384,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=6,
        decoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_ffn_dim=1536,
        num_mel_bins=80,
    )
    WhisperForConditionalGeneration(config).save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
    return directory


def peak_rss_gib() -> float:
    """This process's peak resident memory.

    Linux's VmHWM belongs to the running program; getrusage's maximum would also count the memory of
    the process that started us, which the kernel carries across fork and exec.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30
