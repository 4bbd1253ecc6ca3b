"""Helpers shared by tests: tiny configs that build in a second and never touch the network."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mint.distributed import end_process

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ESC10 = SHARED_DATA / "esc10"
AUDIOCAPS_CAPTIONS = SHARED_DATA / "audiocaps-captions"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Stop a test that needs something this machine lacks: a skip on a developer's machine, a failure
    under CI=true, where `make test` installs every dependency and ../shared sits beside the repo, so that
    a broken install step cannot hide behind a skip."""
    message = f"needs {what}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: nothing may be missing)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, install: str) -> Any:
    """Import `name`, or stop the test naming the package to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name} ({install})")


def require_java() -> None:
    if shutil.which("java") is None:
        missing("java on PATH (pycocoevalcap's PTB tokenizer and METEOR run on it)")


def require_shared(path: Path) -> Path:
    """A file or folder of ../shared/data, or stop the test naming it."""
    if not path.exists():
        missing(f"the shared data {path.resolve()}")
    return path


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (a manifest, predictions, a run's metrics.jsonl)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def tiny_model_overrides() -> list[str]:
    """Dotted overrides that shrink any run config to a Bridge-Net of a few thousand weights."""
    return [
        "model.encoder.kind=mel",
        # Whatever pretrained encoder the run config names (configs/pretrain/tiny.yaml: Whisper tiny.en).
        "model.encoder.name_or_path=null",
        "model.encoder.window_seconds=null",
        "model.encoder.hidden_size=32",
        "model.encoder.n_mels=32",
        "model.bridge.init=scratch",
        "model.bridge.hidden_size=32",
        "model.bridge.num_layers=2",
        "model.bridge.num_heads=2",
        "model.bridge.intermediate_size=64",
        "model.bridge.num_queries=4",
        "model.bridge.cross_attention_freq=1",
        "model.bridge.dropout=0.0",
        "model.bridge.attention_dropout=0.0",
        "model.embed_dim=16",
        "model.max_text_length=16",
        "model.max_audio_seconds=1.5",
    ]


def tiny_run_overrides(output_dir, steps: int, num_clips: int) -> list[str]:
    """Dotted overrides for a short run on a few 1.5 s generated single-event clips, batch 4, one thread,
    logging every step and saving a checkpoint at the last one."""
    return [
        f"output_dir={output_dir}",
        "data.source=synthetic",
        f"data.synthetic.num_clips={num_clips}",
        "data.synthetic.clip_seconds=1.5",
        "data.synthetic.max_events=1",
        f"trainer.max_steps={steps}",
        "trainer.batch_size=4",
        "trainer.warmup_steps=1",
        "trainer.log_every=1",
        f"trainer.save_every={steps}",
        "trainer.progress_bar=false",
        "trainer.num_threads=1",  # a model this small runs fastest on one thread
    ]


def tiny_pretrain_overrides(output_dir, steps: int = 4) -> list[str]:
    return [*tiny_model_overrides(), *tiny_run_overrides(output_dir, steps, num_clips=24)]


def tiny_instruct_overrides(
    output_dir, steps: int = 3, llm: str = "t5", num_clips: int = 16, extra: Sequence[str] = ()
) -> list[str]:
    """A stage-2 run of the tiny model with an in-memory random LLM (`random:t5` or `random:llama`);
    `extra` comes last, so it may also change what is set here."""
    return [
        *tiny_model_overrides(),
        f"model.llm.name_or_path=random:{llm}",
        "model.llm.max_instruction_length=24",
        "model.llm.max_response_length=16",
        *tiny_run_overrides(output_dir, steps, num_clips),
        *extra,
    ]


def jitter_trainable_(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Add Gaussian noise of std `scale` to every trainable weight matrix, in place: fresh weights give
    nearly the same output for any input, jittered ones make outputs depend on it. The window-position
    table is left alone: it is added to every soft prompt whatever the audio, so noise there would only
    drown the audio's part of the prompt."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and parameter.dim() > 1 and name != "window_position":
                parameter.add_(torch.randn_like(parameter) * scale)
    return model


def save_tiny_model(folder, llm: bool, seed: int):
    """Save a tiny model (stage 2 with the in-memory `random:t5` LLM when `llm`) whose weights are
    jittered away from their initial values, so that different clips and texts get clearly
    different embeddings (fresh weights put every similarity within 1e-3)."""
    import torch

    from mint.config import load_config
    from mint.llm.config import LLMConfig
    from mint.modeling import MintConfig, MintModel

    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    if llm:
        config = dataclasses.replace(
            config, llm=LLMConfig(name_or_path="random:t5", max_instruction_length=32, max_response_length=16)
        )
    torch.manual_seed(seed)
    return jitter_trainable_(MintModel.from_config(config), 0.2).save_pretrained(folder)


def _gloo_worker(rank: int, work: Callable[[int], Any], world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        torch.save(work(rank), Path(out_dir) / f"rank{rank}.pt")
    except BaseException:
        dist.destroy_process_group()
        raise
    end_process(0)


def cpu_launch_env() -> dict[str, str]:
    """Environment for a `torchrun` / `accelerate launch` subprocess of the multi-process tests: CPU ranks
    joined by gloo, as on the CI machine, whatever GPUs this one has (NCCL refuses two ranks on one GPU)."""
    return {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_gloo_workers(work: Callable[[int], Any], world: int, tmp_path: Path, timeout_s: float = 120) -> list:
    """Run `work(rank)` (a module-level function) in `world` spawned processes joined by a gloo process
    group; return what each rank returned, in rank order."""
    context = mp.start_processes(
        _gloo_worker,
        args=(work, world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{world}-process gloo run did not finish within {timeout_s:.0f} s")
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world)]


# Gradients of one batch computed in another order (two processes: half-batch sums, then DDP's all-reduce;
# ATC logits over gathered features) differ by rounding only. Reordering an fp32 sum (unit roundoff
# u = 6e-8) moves it by up to a few u times the sum of its terms' magnitudes, and a step's backward chains
# a few dozen such sums. Embedding rows sum the input gradients of every token that reads them, with much
# cancellation, so their rounding is the largest against their own value: measured up to 3.8e-6 of the
# largest gradient (63 u) on an AVX2-only AMD EPYC, while an Intel Xeon with AMX stayed within 0.46 of a
# tolerance of 1e-6 of it plus 1e-4 relative: the two CPUs' kernels block the sums differently. Allowed per element: 1e-4 relative (~1,700 u), and 1e-5 of the
# largest gradient (~170 u of the gradient scale) for elements whose exact value is small and holds mostly
# rounding noise. A broken all-reduce or a per-process loss exceeds it more than 100-fold
# (tests/training/test_training_distributed.py).
GRADIENT_RTOL, GRADIENT_ATOL_OF_SCALE = 1e-4, 1e-5


def gradient_mismatches(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each tensor whose deviation from `want` exceeds the rounding tolerance above, with its worst
    element's multiple of it."""
    assert got.keys() == want.keys()
    scale = max(float(tensor.abs().max()) for tensor in want.values())
    excess = {
        name: float(
            (
                (got[name] - tensor).abs() / (GRADIENT_ATOL_OF_SCALE * scale + GRADIENT_RTOL * tensor.abs())
            ).max()
        )
        for name, tensor in want.items()
    }
    return {name: value for name, value in excess.items() if value > 1}
