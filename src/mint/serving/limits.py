"""What the server accepts and how much work it takes on: upload limits, a bounded queue, timeouts.

`ModelGate` runs model calls on worker threads (never on the event loop), at most `concurrency` at a
time (1: strictly one after the other). It admits at most `concurrency + queue` requests: one more is
refused at once (`QueueFull`, HTTP 503) instead of waiting without bound. A request whose call has not
finished within `timeout_s` (queueing included) gets `GateTimeout` (HTTP 504); threads cannot be
interrupted, so a call already running finishes and keeps its slot until then, and one still waiting
is dropped without running.

`BodyLimit` refuses an oversized request body (HTTP 413) before it is spooled: at once when its
Content-Length says so, else as soon as the bytes received pass the limit. It also refuses a body that
stops arriving (HTTP 408): uvicorn has no timeout while a body is being read, so a client that sends
its headers and then stalls would otherwise hold its connection and buffers forever.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mint.errors import ConfigError

T = TypeVar("T")
# Room in a request body for the multipart framing and the small form fields next to the file.
FORM_OVERHEAD_BYTES = 64 * 1024


@dataclass
class ServeLimits:
    """`max_upload_mb`: size of one uploaded file; `max_audio_seconds`: its duration (longer audio is
    refused, not cropped); `concurrency`: model calls at once; `queue`: requests waiting beyond those;
    `timeout_s`: how long a request may wait for its model call, queueing included; `body_timeout_s`:
    how long the server waits for the next piece of a request body before refusing it."""

    max_upload_mb: float = 25.0
    max_audio_seconds: float = 600.0
    concurrency: int = 1
    queue: int = 8
    timeout_s: float = 120.0
    max_k: int = 100
    max_rerank: int = 128
    max_new_tokens: int = 100
    body_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_audio_seconds", "timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"serve.{name}: expected a positive number, got {value!r}")
        for name, least in (
            ("concurrency", 1),
            ("queue", 0),
            ("max_k", 1),
            ("max_rerank", 0),
            ("max_new_tokens", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"serve.{name}: expected an integer >= {least}, got {value!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class QueueFull(Exception):
    """Every slot of the gate is taken."""


class GateTimeout(Exception):
    """A model call did not finish in time."""


class ModelGate:
    """Admission, serialisation and timeouts for model calls (see the module docstring). `admitted` is
    read and written on the event loop only."""

    def __init__(self, concurrency: int = 1, queue: int = 8, timeout_s: float = 120.0) -> None:
        self.capacity = concurrency + queue
        self.timeout_s = timeout_s
        # Held by a model call while it runs; waiting calls block on it in their own thread.
        self.slots = threading.BoundedSemaphore(concurrency)
        self.admitted = 0
        self._executor = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="mint-model")

    def _release(self, _: object) -> None:
        self.admitted -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self.admitted >= self.capacity:
            raise QueueFull(
                f"the server is busy ({self.admitted} requests admitted, room for {self.capacity})"
            )
        self.admitted += 1
        dropped = threading.Event()

        def call() -> Any:
            with self.slots:
                if dropped.is_set():
                    return None
                return function(*args)

        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except asyncio.TimeoutError:
            dropped.set()
            raise GateTimeout(f"the model did not answer within {self.timeout_s:g} s") from None
        except asyncio.CancelledError:
            # The client went away: a call still waiting for the model need not run.
            dropped.set()
            raise

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BodyLimit:
    """ASGI middleware: HTTP 413 for request bodies over `max_bytes`, HTTP 408 when no piece of the body
    arrives for `idle_timeout_s`."""

    def __init__(self, app: ASGIApp, max_bytes: int, idle_timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s

    def _detail(self) -> str:
        return f"request body: larger than the limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self._detail()}, status_code=413)(scope, receive, send)
            return
        received = 0
        body_done = False

        async def counted() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body, receive() waits for the disconnect, which may rightly take long.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout_s)
            except asyncio.TimeoutError:
                raise HTTPException(
                    408, f"request body: nothing received for {self.idle_timeout_s:g} s; send it whole"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while parsing the body, so it becomes the 413.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)
