"""The read threads of a mailbox database: every job runs once and its caller gets the result
or the exception, also when more jobs arrive than there are threads (the backlog)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from courriel.mailbox.database import ReadThreads


async def test_more_jobs_than_threads_all_answer_in_order_of_their_callers() -> None:
    threads = ReadThreads(2, "test-read")
    gate = threading.Event()
    try:
        # Both threads block on the gate, so the other jobs wait in the backlog.
        blocked = [threads.submit(lambda: gate.wait(5)) for _ in range(2)]
        queued = [threads.submit(lambda k=k: k * k) for k in range(20)]
        await asyncio.sleep(0.01)
        assert not any(f.done() for f in queued)
        gate.set()
        assert await asyncio.gather(*blocked) == [True, True]
        assert await asyncio.gather(*queued) == [k * k for k in range(20)]
    finally:
        gate.set()
        threads.shutdown()


async def test_an_exception_reaches_the_caller_and_the_thread_stays_usable() -> None:
    threads = ReadThreads(1, "test-read")

    def fail() -> int:
        raise ValueError("boom")

    try:
        with pytest.raises(ValueError, match="boom"):
            await threads.submit(fail)
        assert await threads.submit(lambda: 7) == 7
    finally:
        threads.shutdown()


async def test_a_cancelled_caller_does_not_break_the_threads() -> None:
    threads = ReadThreads(1, "test-read")
    gate = threading.Event()
    try:
        first = threads.submit(lambda: gate.wait(5))
        first.cancel()
        gate.set()
        assert await threads.submit(lambda: "after") == "after"
    finally:
        gate.set()
        threads.shutdown()
    assert not any(t.name.startswith("test-read") for t in threading.enumerate())
