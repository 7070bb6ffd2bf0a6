"""Argon2 runs one computation at a time per process, holding no thread
while it waits, and refuses rather than queue without bound."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from core import security
from core.errors import ServiceUnavailable


async def test_a_burst_of_hashes_leaves_the_thread_pool_free() -> None:
    pool = anyio.to_thread.current_default_thread_limiter()
    burst = [asyncio.create_task(security.verify_password("guess", None)) for _ in range(20)]
    await asyncio.sleep(0.05)  # the burst is under way
    # At most one thread of the shared pool computes; the rest wait without one.
    assert pool.borrowed_tokens <= security.HASH_CONCURRENCY
    assert security._limiter.statistics().tasks_waiting >= 15
    # Meanwhile any other work that needs a thread gets one at once.
    with anyio.fail_after(1):
        assert await anyio.to_thread.run_sync(lambda: 42) == 42
    assert not all(task.done() for task in burst)
    assert await asyncio.gather(*burst) == [False] * 20


async def test_too_many_waiting_is_a_503_not_a_queue() -> None:
    calls = [
        asyncio.create_task(security.hash_password("long enough password"))
        for _ in range(security.HASH_CONCURRENCY + security.HASH_MAX_WAITING + 10)
    ]
    await asyncio.sleep(0.01)  # the refusals are immediate
    refused = [c for c in calls if c.done() and isinstance(c.exception(), ServiceUnavailable)]
    assert len(refused) == 10
    error = refused[0].exception()
    assert isinstance(error, ServiceUnavailable)
    assert error.status_code == 503
    assert error.headers["Retry-After"] == "1"
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert security._admitted == 0  # cancelled waiters leave no trace
    assert await security.hash_password("long enough password")


async def test_hash_and_verify() -> None:
    hashed = await security.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert await security.verify_password("correct horse battery", hashed)
    assert not await security.verify_password("wrong", hashed)
    with pytest.raises(TypeError):
        await security.verify_password(None, hashed)  # type: ignore[arg-type]
