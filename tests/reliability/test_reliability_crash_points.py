"""A kill or a full disk at every write of a resumed training run: checkpoints stay valid, no log is lost.

Each filesystem operation the Trainer makes under its output folder (file writes, safetensors saves,
renames, deletions) is numbered. Run k fails operation k, either as a kill (the operation is left
half done and nothing after it runs, not even cleanup handlers) or as a full disk (ENOSPC from a
write, after half its bytes, or from a rename; the error then goes through the real cleanup code).
Afterwards every listed checkpoint must pass its digest check, and a clean resume must log the
losses and reach the weights of an uninterrupted run exactly. This complements the random SIGKILLs
of test_reliability_kill.py with every boundary, deterministically.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from reliability_support import Points, collate_points, mse, small_net

from mint.storage import verify_digests
from mint.training import checkpoint as ckpt
from mint.training.config import TrainerConfig
from mint.training.trainer import Trainer

STEPS = 6


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so no `except Exception` handler can act on it."""


@dataclass
class Faults:
    """Numbers the operations under `root` and fails operation `fail_at` as a kill or a full disk."""

    root: Path
    kind: str  # "kill" or "disk_full"
    fail_at: int | None = None
    operations: list[str] = field(default_factory=list)
    dead: bool = False

    def name(self, target: object) -> str | None:
        """`target` relative to the root, or None when it is outside (or in the tensorboard logs)."""
        if isinstance(target, int):
            try:
                target = os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return f"<fd {target}>"
        path = Path(os.fsdecode(target)).resolve()
        if not path.is_relative_to(self.root) or path.is_relative_to(self.root / "tensorboard"):
            return None
        return path.relative_to(self.root).as_posix()

    def reached(self, what: str, op: str) -> bool:
        """Count this operation; True when it is the one to fail. After a kill nothing runs."""
        if self.dead:
            raise Killed(what)
        if self.kind == "disk_full" and op == "delete":
            return False  # a full disk fails writes and renames, not deletions
        self.operations.append(what)
        return len(self.operations) == self.fail_at

    def fail(self, what: str) -> None:
        if self.kind == "kill":
            self.dead = True
            raise Killed(what)
        raise OSError(errno.ENOSPC, "No space left on device", what)


class _FailingFile:
    """A writable file whose n-th write may be cut in half before the fault strikes."""

    def __init__(self, handle: io.IOBase, faults: Faults, name: str) -> None:
        self._handle, self._faults, self._name = handle, faults, name

    def write(self, data: str | bytes) -> int:
        if self._faults.reached(f"write {self._name}", "write"):
            self._handle.write(data[: len(data) // 2])
            self._handle.flush()
            self._faults.fail(f"write {self._name}")
        return self._handle.write(data)

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def install(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    real_open, real_replace, real_rmtree, real_save = io.open, os.replace, shutil.rmtree, ckpt.save_file

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        name = faults.name(file) if any(flag in mode for flag in "wax+") else None
        return handle if name is None else _FailingFile(handle, faults, name)

    def replace(src, dst, *args, **kwargs):
        name = faults.name(dst)
        if name is not None and faults.reached(f"rename to {name}", "rename"):
            faults.fail(f"rename to {name}")
        return real_replace(src, dst, *args, **kwargs)

    def rmtree(path, *args, **kwargs):
        name = faults.name(path)
        if name is not None and faults.reached(f"delete {name}", "delete"):
            first = next((p for p in sorted(Path(path).rglob("*")) if p.is_file()), None)
            if first is not None:
                first.unlink()  # deletion interrupted after its first file
            faults.fail(f"delete {name}")
        return real_rmtree(path, *args, **kwargs)

    def save_file(tensors, filename, *args, **kwargs):
        name = faults.name(filename)
        if name is not None and faults.reached(f"save {name}", "write"):
            real_save(tensors, filename, *args, **kwargs)
            data = Path(filename).read_bytes()
            with real_open(filename, "wb") as handle:
                handle.write(data[: len(data) // 2])
            faults.fail(f"save {name}")
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(ckpt, "save_file", save_file)


def fit(out: Path, keep_last: int = 1) -> Trainer:
    config = TrainerConfig(
        max_steps=STEPS,
        batch_size=4,
        lr=1e-2,
        warmup_steps=1,
        log_every=1,
        save_every=2,
        keep_last=keep_last,
        progress_bar=False,
    )
    trainer = Trainer(
        small_net(),
        config,
        out,
        Points(),
        collate_points,
        lambda m, b, g: (mse(m, b), {}),
        lambda m: m.state_dict(),
    )
    trainer.fit(resume=True)
    return trainer


def losses(out: Path) -> list[tuple]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"]) for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted run, and the state a run killed during step 3 left behind (checkpoint 2)."""
    out = tmp_path_factory.mktemp("reference")
    trainer = fit(out, keep_last=STEPS)
    interrupted = tmp_path_factory.mktemp("interrupted")
    shutil.copytree(out / "checkpoints" / "step-000000002", interrupted / "checkpoints" / "step-000000002")
    lines = (out / "metrics.jsonl").read_text().splitlines()[:3]
    (interrupted / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    weights = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    return {"losses": losses(out), "weights": weights, "interrupted": interrupted}


def count_operations(reference: dict, kind: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "count"
    shutil.copytree(reference["interrupted"], out)
    faults = Faults(out.resolve(), kind)
    with pytest.MonkeyPatch.context() as patch:
        install(patch, faults)
        fit(out)
    return faults.operations


@pytest.mark.parametrize("kind", ["kill", "disk_full"])
def test_a_fault_at_any_write_never_corrupts_a_checkpoint_or_the_log(
    kind: str, reference: dict, tmp_path: Path
) -> None:
    operations = count_operations(reference, kind, tmp_path)
    assert sum(op.startswith("save ") for op in operations) == 3 * 2  # weights, optimizer, RNG per save
    for fail_at, operation in enumerate(operations, start=1):
        out = tmp_path / f"{kind}-{fail_at}"
        shutil.copytree(reference["interrupted"], out)
        faults = Faults(out.resolve(), kind, fail_at)
        with pytest.MonkeyPatch.context() as patch:
            install(patch, faults)
            with pytest.raises(Killed if kind == "kill" else OSError) as info:
                fit(out)
        if kind == "disk_full":
            assert info.value.errno == errno.ENOSPC
        listed = ckpt.list_checkpoints(out / "checkpoints")
        assert listed, f"{operation}: no checkpoint left"
        for path in listed:
            verify_digests(path)  # raises CheckpointError naming the damaged file
        saves_again = listed[-1].name != f"step-{STEPS:09d}"
        resumed = fit(out)
        assert losses(out) == reference["losses"], f"after a {kind} at {operation}"
        if saves_again:  # the next save clears what the failed one left behind
            assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")], operation
        for name, tensor in resumed.model.state_dict().items():
            torch.testing.assert_close(tensor, reference["weights"][name], rtol=0, atol=0)
