"""Training checkpoints: safetensors and JSON only (nothing is unpickled), written atomically.

`checkpoints/step-000100/` holds the trainable weights, the optimizer state, the RNG states, the
scheduler and the data position, plus a digest of every file. It is assembled in a hidden
`.partial-*` folder and renamed into place, so a crash or a failed write (disk full) never leaves
a half-written checkpoint under a real name, and the previous checkpoints stay intact.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mint.errors import CheckpointError
from mint.storage import file_digests, verify_digests

logger = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d{9})$")


def _optimizer_to_files(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{index}"] = cuda_state
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    meta = {
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
        "python": [version, list(python_state), gauss],
    }
    return tensors, meta


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_keys = sorted(
        (key for key in tensors if key.startswith("torch_cuda.")), key=lambda k: int(k.split(".")[1])
    )
    cuda_states = [tensors[key] for key in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    kind, keys, position, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss = meta["python"]
    random.setstate((version, tuple(python_state), gauss))


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | dict,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    trainer_state: dict,
    keep_last: int,
) -> Path:
    """Write checkpoint `step` under `root` and keep only the newest `keep_last`.

    `optimizer` is the optimizer or, when its state is sharded, the whole-tensor `state_dict()` it
    would have unsharded (`mint.training.fsdp.full_optimizer_state`): the files are the same.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        save_file(weights, str(partial / "model.safetensors"))
        optimizer_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
        optimizer_tensors, optimizer_meta = _optimizer_to_files(optimizer_state)
        save_file(optimizer_tensors, str(partial / "optimizer.safetensors"))
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, str(partial / "rng.safetensors"))
        state = {
            "step": step,
            "trainer": trainer_state,
            "optimizer": optimizer_meta,
            "scheduler": scheduler.state_dict(),
            "rng": rng_meta,
        }
        (partial / "trainer_state.json").write_text(json.dumps(state))
        file_digests(partial, write=True)
        if final.exists():
            _remove(final)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep_last]:
        _remove(old)
    # What killed runs left behind: hidden, never listed, but as large as a checkpoint each.
    for stale in (*root.glob(".partial-*"), *root.glob(".retired-*")):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _remove(checkpoint: Path) -> None:
    """Delete a checkpoint folder, first moving it out of the listed names.

    Deleting file by file in place would leave, if interrupted, a listed checkpoint missing files;
    the rename is atomic, so the checkpoint is either complete and listed or no longer listed.
    """
    retired = Path(tempfile.mkdtemp(prefix=".retired-", dir=checkpoint.parent))
    os.replace(checkpoint, retired / checkpoint.name)
    shutil.rmtree(retired, ignore_errors=True)


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under `root`, oldest first (partial ones are never listed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if path.is_dir() and _STEP_DIR.match(path.name)]
    return sorted(found, key=lambda path: int(_STEP_DIR.match(path.name).group(1)))


def latest_valid_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest checkpoint whose files match their digests; corrupted ones are reported and passed over."""
    for path in reversed(list_checkpoints(root)):
        try:
            verify_digests(path)
        except CheckpointError as error:
            logger.warning("skipping checkpoint %s: %s", path, error)
            continue
        return path
    return None


def load_checkpoint(
    path: str | os.PathLike,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    shard_optimizer_state: Callable[[dict], dict] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore optimizer, scheduler and RNG states; return the weights and the saved trainer state.

    `shard_optimizer_state` turns the saved whole-tensor optimizer state into what a sharded
    optimizer loads (`mint.training.fsdp.shard_optimizer_state`).
    """
    path = Path(path)
    verify_digests(path)
    state = json.loads((path / "trainer_state.json").read_text())
    optimizer_state = _optimizer_from_files(
        load_file(str(path / "optimizer.safetensors")), state["optimizer"]
    )
    if shard_optimizer_state is not None:
        optimizer_state = shard_optimizer_state(optimizer_state)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(state["scheduler"])
    _restore_rng(load_file(str(path / "rng.safetensors")), state["rng"])
    weights = load_file(str(path / "model.safetensors"))
    return weights, {"step": state["step"], **state["trainer"]}
