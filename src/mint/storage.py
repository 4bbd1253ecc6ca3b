"""Atomic writes and integrity digests for everything mint saves (models, checkpoints, outputs).

A save either fully replaces what was there or leaves it untouched; a directory that was only
partly written, or altered afterwards, fails `verify_digests` instead of loading silently wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mint.errors import CheckpointError

DIGESTS_NAME = "checksums.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder inside `target`; on success move its entries into `target`.

    Entries are moved one by one with `os.replace` and the digest file last, so an interrupted move
    leaves a folder that fails verification rather than a silently mixed one. Other files already
    in `target` are kept.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        yield staging
        entries = sorted(staging.iterdir(), key=lambda entry: entry.name == DIGESTS_NAME)
        for entry in entries:
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                retired = Path(tempfile.mkdtemp(prefix=".retired-", dir=target))
                os.replace(destination, retired / entry.name)
                os.replace(entry, destination)
                shutil.rmtree(retired)
            else:
                os.replace(entry, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and path.name != DIGESTS_NAME
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def file_digests(directory: str | os.PathLike, write: bool = False) -> dict[str, str]:
    """SHA-256 of every file under `directory` (hidden entries excluded); optionally recorded."""
    directory = Path(directory)
    digests = {path.relative_to(directory).as_posix(): sha256_file(path) for path in _listed_files(directory)}
    if write:
        payload = {"algorithm": "sha256", "files": digests}
        atomic_write_text(directory / DIGESTS_NAME, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return digests


def verify_digests(directory: str | os.PathLike) -> None:
    """Refuse a directory whose files do not match the digests recorded when it was saved.

    Every file must be listed and match: a missing, altered or added file is refused. Hidden entries
    (names starting with ".") are not part of a saved directory and are ignored.
    """
    directory = Path(directory)
    record = directory / DIGESTS_NAME
    if not record.is_file():
        raise CheckpointError(f"{directory}: no {DIGESTS_NAME}; refusing to load files of unknown integrity")
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        expected = None
    if not isinstance(expected, dict) or not all(isinstance(value, str) for value in expected.values()):
        raise CheckpointError(f"{record}: unreadable digest record")
    for path in _listed_files(directory):
        name = path.relative_to(directory).as_posix()
        if name not in expected:
            # An added file can change what loads (e.g. a tokenizer reads every file in its folder).
            raise CheckpointError(
                f"{path}: not listed in {DIGESTS_NAME}; refusing a folder holding files of unknown origin"
            )
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{directory}: file {name} listed in {DIGESTS_NAME} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(
                f"{path}: content does not match its recorded SHA-256; the file is corrupt or was altered"
            )
