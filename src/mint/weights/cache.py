"""The cache of converted weights: one directory per conversion, written once, digest-checked on every reuse.

The cache lives in `$MINT_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/mint/weights`, else `~/.cache/mint/weights`.
A conversion is built in a hidden staging directory beside its final place and renamed into it when
complete, so a crash leaves no half-written conversion under the final name. Each conversion holds
`source.json` (what it was made from, by which converter version) and `checksums.json` (the SHA-256 of
every file, `mint.storage`). It is reused only if both still hold: a changed source or converter, or a
corrupted file, makes it be converted again. Processes converting the same thing (the ranks of one
training run) take turns through a lock file, so the work is done once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mint.errors import CheckpointError
from mint.storage import DIGESTS_NAME, file_digests, verify_digests

logger = logging.getLogger(__name__)

ENV_VAR = "MINT_WEIGHTS_DIR"
SOURCE_NAME = "source.json"


def weights_dir() -> Path:
    """The cache directory (not created here)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mint" / "weights"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _recorded_source(directory: Path) -> dict | None:
    try:
        return json.loads((directory / SOURCE_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def find_conversion(key: str, source: dict) -> Path | None:
    """The completed conversion of `source` under `key`, without checking its files' digests (a quick
    look, for listings); None when there is none."""
    directory = weights_dir() / key
    if (directory / DIGESTS_NAME).is_file() and _recorded_source(directory) == source:
        return directory
    return None


def _usable(directory: Path, source: dict) -> bool:
    if not directory.exists():
        return False
    if _recorded_source(directory) != source:
        logger.info(
            "%s was converted from other files or by another converter version; converting again", directory
        )
        return False
    try:
        verify_digests(directory)
    except CheckpointError as error:
        logger.warning("cached weights fail their digest check (%s); converting again", error)
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(staging: Path, target: Path) -> None:
    """Put the finished `staging` directory at `target`, replacing what is there."""
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".retired-{target.name}-", dir=target.parent))
        os.replace(target, retired / target.name)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)


def cached_conversion(key: str, source: dict, convert: Callable[[Path], None]) -> Path:
    """The directory holding `convert`'s output for `source`, converting only when no usable one is cached.

    `key` names the directory inside the cache; `source` (JSON-able) describes the input and converter
    version exactly; `convert(output_dir)` writes the converted files into an existing empty directory.
    """
    root = weights_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(
            f"{root}: cannot create the weights cache ({error}); point {ENV_VAR} at a writable directory"
        ) from error
    target = root / key
    with _locked(root / f".{key}.lock"):
        if _usable(target, source):
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=root))
        # mkdtemp makes it private; the published directory gets the permissions a plain mkdir would.
        staging.chmod(0o777 & ~_umask())
        try:
            logger.info("converting weights into %s (once; later runs reuse it)", target)
            convert(staging)
            (staging / SOURCE_NAME).write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
            file_digests(staging, write=True)
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
