"""METEOR 1.5 through the jar pycocoevalcap ships, driven the way the reference drives it.

The jar runs as `java -jar meteor-1.5.jar - - -stdio -l en -norm`. For each item we send
`SCORE ||| ref 1 ||| ... ||| ref k ||| candidate` and read back its sufficient statistics; one
`EVAL ||| stats 1 ||| ... ||| stats N` line then returns N per-item scores and the corpus score
(computed from the pooled statistics, which is the number the captioning literature reports).
Unlike the reference, one process serves one call and is always closed afterwards.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO

import numpy as np

from mint.errors import MintError
from mint.evaluation.metrics.java import METEOR_JAR, failure_message, java_executable, pycocoevalcap_jar
from mint.evaluation.metrics.text import check_caption_inputs

_SEPARATOR = " ||| "
_LINE_BREAKS = re.compile("[\r\n]")


def _field(text: str) -> str:
    # "|||" separates fields and a line break ends the request, so neither may appear inside one;
    # the reference removes "|||" and squeezes double spaces in the same way.
    return _LINE_BREAKS.sub(" ", text).replace("|||", "").replace("  ", " ")


class _MeteorProcess:
    """One running METEOR jar, talked to line by line over pipes."""

    def __init__(self, process: subprocess.Popen, stderr: IO[bytes], command: list[str]) -> None:
        self._process = process
        self._stderr = stderr
        self._command = command

    def request(self, line: str, replies: int) -> list[str]:
        try:
            self._process.stdin.write(line.encode("utf-8") + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError as error:
            raise self._failure() from error
        answers = []
        for _ in range(replies):
            answer = self._process.stdout.readline()
            if not answer:
                raise self._failure()
            answers.append(answer.decode("utf-8").strip())
        return answers

    def _failure(self) -> MintError:
        returncode = self._process.poll()
        self._stderr.seek(0)
        return MintError(failure_message("METEOR", self._command, returncode, self._stderr.read()))


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """Corpus METEOR 1.5 and the per-item scores, for tokenised captions."""
    check_caption_inputs("METEOR", candidates, references)
    jar = pycocoevalcap_jar(METEOR_JAR)
    command = [java_executable(), "-jar", "-Xmx2G", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"]
    # stderr goes to a file so that a chatty JVM can never fill a pipe nobody reads and hang.
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        except OSError as error:
            raise MintError(f"METEOR: could not start {command[0]!r}: {error}") from error
        try:
            meteor_process = _MeteorProcess(process, stderr, command)
            statistics = [
                meteor_process.request(
                    _SEPARATOR.join(["SCORE", *(_field(ref) for ref in refs), _field(candidate)]), 1
                )[0]
                for candidate, refs in zip(candidates, references, strict=True)
            ]
            answers = meteor_process.request(_SEPARATOR.join(["EVAL", *statistics]), len(statistics) + 1)
        finally:
            _close(process)
    try:
        values = [float(answer) for answer in answers]
    except ValueError as error:
        raise MintError(f"METEOR: expected numeric scores from the jar, got {answers[:3]!r}...") from error
    return values[-1], np.array(values[:-1], dtype=np.float64)


def _close(process: subprocess.Popen) -> None:
    if process.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
