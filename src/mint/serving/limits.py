"""What the server accepts and how much work it takes on: upload limits, batching, a bounded queue, timeouts.

`ModelGate` runs model calls on worker threads (never on the event loop), at most `concurrency` at a
time (1: strictly one after the other). Requests that one call can serve together (same endpoint, same
settings: a `key`) wait in one queue; when a slot frees, up to `max_batch` of them go through the model in
one call (after at least `max_wait_s`, which lets a batch gather when the model is idle; 0 adds no
latency, and requests still batch while the model is busy). It admits at most `concurrency x max_batch +
queue` requests: one more is refused at once (`QueueFull`, HTTP 503) instead of waiting without bound. A
request whose call has not finished within `timeout_s` (queueing included) gets `GateTimeout` (HTTP 504);
threads cannot be interrupted, so a call already running finishes and keeps its requests' places until
then, and a request still waiting is dropped without running.

`BodyLimit` refuses an oversized request body (HTTP 413) before it is spooled: at once when its
Content-Length says so, else as soon as the bytes received pass the limit. It also refuses a body that
stops arriving (HTTP 408): uvicorn has no timeout while a body is being read, so a client that sends
its headers and then stalls would otherwise hold its connection and buffers forever.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mint.errors import ConfigError

T = TypeVar("T")
# Room in a request body for the multipart framing and the small form fields next to the file.
FORM_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """`max_upload_mb`: size of one uploaded file; `max_audio_seconds`: its duration (longer audio is
    refused, not cropped); `concurrency`: model calls at once; `max_batch`: requests one model call may
    serve together; `max_wait_ms`: how long a batch may wait for more requests; `queue`: requests waiting
    beyond those; `timeout_s`: how long a request may wait for its model call, queueing included;
    `body_timeout_s`: how long the server waits for the next piece of a request body before refusing it."""

    max_upload_mb: float = 25.0
    max_audio_seconds: float = 600.0
    concurrency: int = 1
    max_batch: int = 8
    max_wait_ms: float = 0.0
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
        if not isinstance(self.max_wait_ms, (int, float)) or not 0 <= self.max_wait_ms < math.inf:
            raise ConfigError(f"serve.max_wait_ms: expected a number >= 0, got {self.max_wait_ms!r}")
        for name, least in (
            ("concurrency", 1),
            ("max_batch", 1),
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


@dataclass(frozen=True)
class Failed:
    """What a batch call returns, in place of a result, for a request it could not serve (its own bad
    input), so that the error reaches that request alone."""

    error: BaseException


@dataclass
class _Request:
    item: Any
    future: asyncio.Future
    started: bool = False


@dataclass
class _Queue:
    run_batch: Callable[[list[Any]], list[Any]]
    requests: list[_Request] = field(default_factory=list)


class ModelGate:
    """Admission, batching, serialisation and timeouts for model calls (see the module docstring).

    Everything but the model calls themselves happens on the event loop, so the bookkeeping needs no lock.
    """

    def __init__(
        self,
        concurrency: int = 1,
        queue: int = 8,
        timeout_s: float = 120.0,
        max_batch: int = 1,
        max_wait_s: float = 0.0,
    ) -> None:
        self.capacity = concurrency * max_batch + queue
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        # Held by a batch while its model call runs; taken in arrival order.
        self.slots = asyncio.Semaphore(concurrency)
        self.admitted = 0
        # A key has a queue exactly while a dispatch for it is pending (`_dispatch` removes an emptied one).
        self._queues: dict[Hashable, _Queue] = {}
        self._tasks: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mint-model")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` as a model call of its own (never batched with another)."""
        return await self.submit(object(), None, lambda _: [function(*args)])

    async def submit(self, key: Hashable, item: Any, run_batch: Callable[[list[Any]], list[Any]]) -> Any:
        """`item`'s result from `run_batch(items)`, a call on up to `max_batch` items submitted under the same
        `key` (requests a single call can serve, e.g. captions with the same settings). `run_batch` returns
        one result per item, in order, or `Failed(error)` for an item it could not serve; the `run_batch`
        of a key's first waiting request is the one called."""
        if self.admitted >= self.capacity:
            raise QueueFull(
                f"the server is busy ({self.admitted} requests admitted, room for {self.capacity})"
            )
        self.admitted += 1
        request = _Request(item, asyncio.get_running_loop().create_future())
        request.future.add_done_callback(self._release)
        if key not in self._queues:
            self._queues[key] = _Queue(run_batch)
            self._start_dispatch(key)
        self._queues[key].requests.append(request)
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), self.timeout_s)
        except asyncio.TimeoutError:
            self._drop(request)
            raise GateTimeout(f"the model did not answer within {self.timeout_s:g} s") from None
        except asyncio.CancelledError:
            # The client went away: a request still waiting for the model need not run.
            self._drop(request)
            raise

    def _start_dispatch(self, key: Hashable) -> None:
        task = asyncio.create_task(self._dispatch(key))
        # The loop keeps only a weak reference to a task: hold it until it ends.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, _: asyncio.Future) -> None:
        self.admitted -= 1

    @staticmethod
    def _drop(request: _Request) -> None:
        # One already in a running call keeps its place until the call ends.
        if not request.started:
            request.future.cancel()

    async def _dispatch(self, key: Hashable) -> None:
        """Run the next batch of `key` once a slot is free: the requests that arrived in the meantime (after
        at least `max_wait_s`) join it, up to `max_batch`."""
        if self.max_wait_s:
            await asyncio.sleep(self.max_wait_s)
        async with self.slots:
            queue = self._queues[key]
            taken, queue.requests = queue.requests[: self.max_batch], queue.requests[self.max_batch :]
            if queue.requests:
                self._start_dispatch(key)
            else:
                del self._queues[key]
            live = [request for request in taken if not request.future.done()]
            if not live:
                return
            for request in live:
                request.started = True
            items = [request.item for request in live]
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._executor, queue.run_batch, items
                )
                if len(results) != len(items):
                    raise RuntimeError(f"a batch call returned {len(results)} results for {len(items)} items")
            except Exception as error:
                # Not one request's fault: the error belongs to every request of the batch.
                results = [Failed(error)] * len(live)
            for request, result in zip(live, results, strict=True):
                if request.future.done():
                    continue
                if isinstance(result, Failed):
                    request.future.set_exception(result.error)
                else:
                    request.future.set_result(result)

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
