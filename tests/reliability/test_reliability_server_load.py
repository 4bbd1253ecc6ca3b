"""`mint serve` as a real process under load: a few hundred concurrent requests mixing good uploads with
malformed, oversized, empty and non-audio ones, clients that trickle their bodies and clients that stall.

Every request must get an HTTP answer with a reason, the server must stay up with bounded memory, and
uploads must never leave files behind (its TMPDIR and working directory are fresh folders checked
afterwards). Requests go over raw loopback sockets, so the client controls exactly what is sent when.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from reliability_support import encode, mint_command, mint_env, tone

from mint.config import load_config
from mint.llm.config import LLMConfig
from mint.modeling import MintConfig, MintModel
from mint_testing import tiny_model_overrides

HOST = "127.0.0.1"
MAX_UPLOAD_MB = 1
# The server's limit between two pieces of a request body (ServeLimits.body_timeout_s, its default).
BODY_TIMEOUT_S = 10.0
WAV = encode(tone(1.0, 16000), 16000, "WAV")
BOUNDARY = "mintloadboundary"
REFUSALS = {400, 413, 415, 422}
BUSY = {503, 504}


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    tmpdir: Path
    workdir: Path
    model_dir: Path


@dataclass
class Answer:
    status: int | None
    body: dict | None
    error: str | None = None


def _save_tiny_stage2_model(folder: Path) -> Path:
    config = load_config(MintConfig, None, [item.removeprefix("model.") for item in tiny_model_overrides()])
    config = dataclasses.replace(
        config, llm=LLMConfig(name_or_path="random:t5", max_instruction_length=32, max_response_length=16)
    )
    torch.manual_seed(3)
    return MintModel.from_config(config).save_pretrained(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _files_under(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*")}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body of (field, filename or None, value) parts."""
    chunks = []
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if filename:
            head += "Content-Type: application/octet-stream\r\n"
        chunks.append(head.encode() + b"\r\n" + value + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def _read_answer(sock: socket.socket, data: bytes = b"") -> Answer:
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return Answer(None, None, "closed without an answer")
    status = int(head.split(b" ", 2)[1])
    try:
        return Answer(status, json.loads(body))
    except ValueError:
        return Answer(status, None, f"not JSON: {body[:200]!r}")


def exchange(
    port: int,
    path: str,
    body: bytes,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
    pieces: int = 1,
    pause_s: float = 0.0,
    stall_after: int | None = None,
    expect_continue: bool = False,
    timeout_s: float = 60.0,
) -> Answer:
    """POST `body` in `pieces` with `pause_s` between them, stopping early when the server has answered
    (as a client should once it is refused). With `stall_after`, only that many body bytes are sent and
    the client then waits, silent, for the server to give up on it. With `expect_continue` the body
    waits for the server's "100 Continue", the way clients send large uploads: a server that refuses
    one from its headers answers at once and closes, and bytes sent after that would reset the
    connection before its answer is read."""
    expect = "Expect: 100-continue\r\n" if expect_continue else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{expect}"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sent = body if stall_after is None else body[:stall_after]
    step = max(1, -(-len(sent) // pieces))
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
            sock.sendall(head)
            if expect_continue:
                interim = b""
                while b"\r\n\r\n" not in interim and (chunk := sock.recv(65536)):
                    interim += chunk
                if not interim.startswith(b"HTTP/1.1 100"):
                    return _read_answer(sock, interim)
            for start in range(0, len(sent), step):
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(sent[start : start + step])
                time.sleep(pause_s)
            return _read_answer(sock)
    except OSError as error:
        return Answer(None, None, f"{type(error).__name__}: {error}")


def get_health(port: int) -> Answer:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return _read_answer(sock)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("server-load")
    model_dir = _save_tiny_stage2_model(root / "model")
    tmpdir, workdir = root / "tmp", root / "cwd"
    tmpdir.mkdir()
    workdir.mkdir()
    port = _free_port()
    env = mint_env() | {"TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    command = mint_command(
        "serve", "--model", str(model_dir), "--host", HOST, "--port", str(port), "--device", "cpu",
        "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-audio-seconds", "5", "--concurrency", "1",
        "--queue", "8", "--timeout", "20", "--log-level", "warning",
    )  # fmt: skip
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"mint serve exited early:\n{process.stderr.read()}"
            assert time.monotonic() < deadline, "mint serve did not answer /health within 60 s"
            try:
                if get_health(port).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield Server(process, port, tmpdir, workdir, model_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def assert_still_sound(server: Server, model_files: dict[str, int]) -> None:
    """Alive, answering, and no upload left anywhere: not in TMPDIR, the working directory or the model
    folder, and no deleted (spooled) file still held open by the process."""
    assert server.process.poll() is None, "the server died"
    health = get_health(server.port)
    assert health.status == 200 and health.body["status"] == "ok", health
    assert health.body["queue"]["admitted"] == 0, health.body
    assert _files_under(server.tmpdir) == {}, "uploads left in the server's TMPDIR"
    assert _files_under(server.workdir) == {}, "files written to the server's working directory"
    assert _files_under(server.model_dir) == model_files
    held = [os.readlink(fd) for fd in Path(f"/proc/{server.process.pid}/fd").iterdir() if fd.exists()]
    assert not [target for target in held if target.endswith("(deleted)")], held


def _requests() -> list[tuple[str, set[int], dict]]:
    """(kind, acceptable statuses, exchange arguments): 200 requests of 10 kinds, interleaved."""
    kinds = [
        ("caption", {200} | BUSY, {"path": "/caption", "body": _multipart([
            ("file", "a.wav", WAV), ("max_new_tokens", None, b"4")])}),
        ("embed", {200} | BUSY, {"path": "/embed", "body": _multipart([("file", "a.wav", WAV)])}),
        ("trickled", {200} | BUSY, {"path": "/embed", "body": _multipart([("file", "a.wav", WAV)]),
                                    "pieces": 8, "pause_s": 0.2}),
        ("unterminated multipart", REFUSALS, {"path": "/embed", "body": _multipart(
            [("file", "a.wav", WAV)])[:-40]}),
        ("garbage multipart", REFUSALS, {"path": "/caption", "body": os.urandom(4096)}),
        ("oversized", {413}, {"path": "/embed", "body": _multipart(
            [("file", "big.wav", os.urandom(MAX_UPLOAD_MB * 1024 * 1024 + 100_000))]), "expect_continue": True}),
        ("empty", REFUSALS, {"path": "/caption", "body": _multipart([("file", "empty.wav", b"")])}),
        ("not audio", REFUSALS | BUSY, {"path": "/embed", "body": _multipart(
            [("file", "notes.wav", b"just some text, not a sound\n" * 50)])}),
        ("no file", REFUSALS, {"path": "/embed", "body": _multipart([("pooled", None, b"true")])}),
        ("json body", REFUSALS, {"path": "/embed", "body": b'{"file": "a.wav"}',
                                 "content_type": "application/json"}),
    ]  # fmt: skip
    return [kinds[i % len(kinds)] for i in range(200)]


def test_two_hundred_mixed_requests_each_get_an_answer(server: Server) -> None:
    model_files = _files_under(server.model_dir)
    # Warm the model up first, so that lazy first-call allocations do not count as growth.
    for path in ("/caption", "/embed"):
        assert exchange(server.port, path, _multipart([("file", "a.wav", WAV)])).status == 200
    rss_before = _rss_kib(server.process.pid)
    requests = _requests()
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(pool.map(lambda request: exchange(server.port, **request[2]), requests))
    rss_after = _rss_kib(server.process.pid)

    seen: Counter = Counter()
    for (kind, acceptable, _), answer in zip(requests, answers, strict=True):
        assert answer.error is None and answer.status in acceptable, (kind, answer)
        seen[kind, answer.status] += 1
        if answer.status == 200:
            assert ("caption" in answer.body) if kind == "caption" else len(answer.body["embedding"]) > 0
        else:
            assert isinstance(answer.body["detail"], (str, list)) and answer.body["detail"], (kind, answer)
    assert seen["caption", 200] and seen["embed", 200] + seen["trickled", 200], seen
    assert seen["oversized", 413] == 20, seen
    assert rss_after - rss_before < 300 * 1024, f"RSS grew from {rss_before} KiB to {rss_after} KiB"
    assert_still_sound(server, model_files)


def test_stalled_clients_are_cut_off_while_others_are_served(server: Server) -> None:
    model_files = _files_under(server.model_dir)
    body = _multipart([("file", "a.wav", WAV)])
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = time.monotonic()
        stalled = [
            pool.submit(
                exchange, server.port, "/embed", body, stall_after=after, timeout_s=BODY_TIMEOUT_S + 20
            )
            for after in (0, 10, 1000, len(body) // 2)
        ]
        time.sleep(1.0)
        # While those hold their connections open, the server answers everyone else at once.
        health_started = time.monotonic()
        assert get_health(server.port).status == 200
        assert time.monotonic() - health_started < 2.0
        assert exchange(server.port, "/embed", body).status == 200
        cut_off = [future.result() for future in stalled]
        waited = time.monotonic() - started
    for answer in cut_off:
        assert answer.status == 408 and "body" in answer.body["detail"], answer
    assert BODY_TIMEOUT_S - 1 <= waited < BODY_TIMEOUT_S + 10, waited
    assert_still_sound(server, model_files)
