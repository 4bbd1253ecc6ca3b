"""ModelGate (concurrency, queue bound, timeouts) and ServeLimits validation, without a model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mint.errors import ConfigError
from mint.serving.limits import Failed, GateTimeout, ModelGate, QueueFull, ServeLimits


def test_limits_are_validated():
    assert ServeLimits(max_upload_mb=1).max_upload_bytes == 1024 * 1024
    for field, value in (
        ("queue", -1),
        ("concurrency", 0),
        ("max_batch", 0),
        ("max_wait_ms", -1.0),
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
        await gate.slots.acquire()
        with pytest.raises(GateTimeout, match=r"within 0\.1 s"):
            await gate.run(ran.set)
        gate.slots.release()
        while gate.admitted:
            await asyncio.sleep(0.01)
        gate.shutdown()

    asyncio.run(scenario())
    assert not ran.is_set()


def _held_gate(max_batch: int) -> tuple[ModelGate, threading.Event, asyncio.Future]:
    """A gate (one slot) whose model is busy with a call that runs until the returned event is set."""
    gate = ModelGate(concurrency=1, queue=16, timeout_s=5.0, max_batch=max_batch)
    free = threading.Event()
    busy = asyncio.ensure_future(gate.run(free.wait))
    return gate, free, busy


def test_requests_of_one_key_that_wait_together_share_calls_of_at_most_max_batch():
    calls: list[tuple[str, list[int]]] = []

    def times_ten(key: str):
        def run_batch(items: list[int]) -> list[int]:
            calls.append((key, items))
            return [item * 10 for item in items]

        return run_batch

    async def scenario() -> list:
        gate, free, busy = _held_gate(max_batch=3)
        await asyncio.sleep(0.05)  # the busy call is running
        waiting = [gate.submit("a", item, times_ten("a")) for item in range(5)]
        waiting += [gate.submit("b", item, times_ten("b")) for item in (7, 8)]
        results = asyncio.gather(*waiting)
        await asyncio.sleep(0.05)
        assert calls == [] and gate.admitted == 8
        free.set()
        answers = await results
        await busy
        gate.shutdown()
        return answers

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 40, 70, 80]
    # Keys never mix; a key's requests go in arrival order, max_batch at a time.
    assert calls == [("a", [0, 1, 2]), ("b", [7, 8]), ("a", [3, 4])]


def test_an_item_the_batch_call_fails_fails_its_request_alone_and_a_failed_call_fails_them_all():
    def run_batch(items: list[int]) -> list:
        if 99 in items:
            raise RuntimeError("the model broke")
        return [Failed(ValueError(f"bad item {item}")) if item < 0 else item for item in items]

    async def scenario() -> None:
        gate, free, busy = _held_gate(max_batch=8)
        await asyncio.sleep(0.05)
        mixed = asyncio.gather(
            *(gate.submit("k", item, run_batch) for item in (1, -2, 3)), return_exceptions=True
        )
        broken = asyncio.gather(
            *(gate.submit("j", item, run_batch) for item in (4, 99)), return_exceptions=True
        )
        free.set()
        first, second, third = await mixed
        assert (first, third) == (1, 3)
        assert isinstance(second, ValueError) and str(second) == "bad item -2"
        assert all(isinstance(error, RuntimeError) for error in await broken)
        await busy
        assert gate.admitted == 0
        gate.shutdown()

    asyncio.run(scenario())


def test_a_request_that_timed_out_while_waiting_is_left_out_of_the_batch():
    seen: list[list[str]] = []

    def run_batch(items: list[str]) -> list[str]:
        seen.append(items)
        return items

    async def scenario() -> None:
        gate = ModelGate(concurrency=1, queue=4, timeout_s=0.2, max_batch=8)
        await gate.slots.acquire()  # the model is busy
        early = asyncio.ensure_future(gate.submit("k", "early", run_batch))
        await asyncio.sleep(0.1)
        gate.timeout_s = 5.0
        late = asyncio.ensure_future(gate.submit("k", "late", run_batch))
        with pytest.raises(GateTimeout):
            await early
        assert gate.admitted == 1  # "early" left at once
        gate.slots.release()
        assert await late == "late"
        gate.shutdown()

    asyncio.run(scenario())
    assert seen == [["late"]]
