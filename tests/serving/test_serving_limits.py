"""ModelGate (concurrency, queue bound, timeouts) and ServeLimits validation, without a model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mint.errors import ConfigError
from mint.serving.limits import GateTimeout, ModelGate, QueueFull, ServeLimits


def test_limits_are_validated():
    assert ServeLimits(max_upload_mb=1).max_upload_bytes == 1024 * 1024
    for field, value in (
        ("queue", -1),
        ("concurrency", 0),
        ("timeout_s", 0),
        ("max_upload_mb", float("nan")),
    ):
        with pytest.raises(ConfigError, match=f"serve\\.{field}"):
            ServeLimits(**{field: value})


def test_calls_run_in_parallel_up_to_the_concurrency_and_extra_ones_are_refused():
    async def scenario() -> None:
        gate = ModelGate(concurrency=2, queue=0, timeout_s=5)
        # Both calls must be inside the barrier at once, or it breaks after its timeout.
        barrier = threading.Barrier(2, timeout=5)
        first = asyncio.ensure_future(gate.run(barrier.wait))
        second = asyncio.ensure_future(gate.run(barrier.wait))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await gate.run(time.sleep, 0)
        assert sorted(await asyncio.gather(first, second)) == [0, 1]
        await asyncio.sleep(0)
        assert gate.admitted == 0
        gate.shutdown()

    asyncio.run(scenario())


def test_with_concurrency_one_calls_never_overlap_and_run_off_the_event_loop():
    running = 0
    overlap = 0
    threads = set()
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, overlap
        with lock:
            running += 1
            overlap = max(overlap, running)
            threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            running -= 1

    async def scenario() -> None:
        gate = ModelGate(concurrency=1, queue=3, timeout_s=5)
        await asyncio.gather(*(gate.run(work) for _ in range(4)))
        gate.shutdown()

    asyncio.run(scenario())
    assert overlap == 1 and threading.get_ident() not in threads


def test_a_timed_out_call_that_is_still_waiting_never_runs():
    ran = threading.Event()

    async def scenario() -> None:
        gate = ModelGate(concurrency=1, queue=1, timeout_s=0.1)
        gate.slots.acquire()
        with pytest.raises(GateTimeout, match=r"within 0\.1 s"):
            await gate.run(ran.set)
        gate.slots.release()
        while gate.admitted:
            await asyncio.sleep(0.01)
        gate.shutdown()

    asyncio.run(scenario())
    assert not ran.is_set()
