"""Locating the Java runtime and the jars that pycocoevalcap ships.

PTB tokenisation and METEOR 1.5 are defined by Java programs; scoring with the very jars the
reference toolkit bundles is what makes our numbers comparable with published ones.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from mint.errors import MintError

PTB_TOKENIZER_JAR = "tokenizer/stanford-corenlp-3.4.1.jar"
METEOR_JAR = "meteor/meteor-1.5.jar"


def java_executable() -> str:
    """Absolute path of `java` on PATH; raises MintError when there is none."""
    java = shutil.which("java")
    if java is None:
        raise MintError(
            "caption metrics: the 'java' executable was not found on PATH; PTB tokenisation, METEOR "
            "and SPICE run Java programs (install a Java runtime, version 8 or newer)"
        )
    return java


def pycocoevalcap_jar(relative: str) -> Path:
    """Path of a jar inside the installed pycocoevalcap package, e.g. `PTB_TOKENIZER_JAR`."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MintError(
            "caption metrics: the package 'pycocoevalcap' is not installed; it ships the PTB tokenizer "
            "and METEOR jars (install the 'eval' extra: pip install 'mint-audio[eval]')"
        )
    jar = Path(next(iter(spec.submodule_search_locations))) / relative
    if not jar.is_file():
        raise MintError(f"caption metrics: expected the jar {jar} inside pycocoevalcap, but it is missing")
    return jar


def failure_message(what: str, command: list[str], returncode: int | None, stderr: bytes | str) -> str:
    """A readable message for a Java program that failed, quoting the end of its stderr."""
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else stderr
    tail = text.strip()[-2000:] or "(no output on stderr)"
    return f"{what}: command {' '.join(command)!r} failed (exit status {returncode}):\n{tail}"


def run_java(what: str, command: list[str], stdin: bytes, cwd: Path | None = None) -> bytes:
    """Run one Java program to completion, feeding `stdin`; returns its stdout or raises MintError."""
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, cwd=cwd, check=False)
    except OSError as error:
        raise MintError(f"{what}: could not start {command[0]!r}: {error}") from error
    if done.returncode != 0:
        raise MintError(failure_message(what, command, done.returncode, done.stderr))
    return done.stdout
