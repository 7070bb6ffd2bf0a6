"""One event loop and one database engine per worker child process.

Celery's prefork pool forks children from the main process. An engine (and the
asyncpg connections in its pool) must never cross a fork or an event loop, so
each child builds its own in ``worker_process_init`` and disposes of it in
``worker_process_shutdown``. The loop runs in a thread of the child for the
child's whole life, so that jobs go on between tasks: a task body is a thin
sync wrapper that hands a coroutine to the loop (:func:`run`) and waits for
it, and a job task returns once its job is claimed, leaving the job to run
on the loop beside up to WORKER_JOBS_PER_PROCESS - 1 others
(:func:`start_in_background`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core import tracing
from core.budget import worker_pool
from core.db import create_engine, create_sessionmaker
from core.settings import get_settings

T = TypeVar("T")
C = TypeVar("C")
log = logging.getLogger(__name__)

# A warm shutdown waits this long for the jobs still running in a child
# (the worker's stop_grace_period is 60 s); the rest are cancelled, rolled
# back, and taken back by the relay once their heartbeat is stale.
DRAIN_SECONDS = 50.0


@dataclass
class Runtime:
    """The loop (and its thread), engine and running jobs of one process."""

    pid: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    slots: int
    free: asyncio.Semaphore | None = None
    running: set[asyncio.Task[Any]] = field(default_factory=set)


_runtime: Runtime | None = None


def start() -> Runtime:
    """Create this process's loop and engine (replacing any inherited ones)."""
    global _runtime
    loop = asyncio.new_event_loop()
    settings = get_settings()
    jobs = settings.jobs.worker_jobs_per_process
    pool_size, max_overflow = worker_pool(jobs)
    db = settings.db.model_copy(update={"db_pool_size": pool_size, "db_max_overflow": max_overflow})
    # A job's statements may run longer than a request's: a big import's COPY.
    engine = create_engine(
        db,
        application_name="worker",
        statement_timeout=settings.jobs.job_statement_timeout_seconds,
    )
    tracing.trace_engine(engine)
    thread = threading.Thread(target=loop.run_forever, name="job-loop", daemon=True)
    thread.start()
    _runtime = Runtime(os.getpid(), loop, thread, engine, create_sessionmaker(engine), jobs)
    log.debug("worker runtime started in pid %s", _runtime.pid)
    return _runtime


def stop() -> None:
    """Let running jobs end (at most DRAIN_SECONDS), dispose of the engine
    and stop the loop."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None or runtime.pid != os.getpid():
        return

    async def close() -> None:
        if runtime.running:
            log.info("waiting for %d running job(s) to end", len(runtime.running))
            _, late = await asyncio.wait(runtime.running, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await runtime.engine.dispose()

    asyncio.run_coroutine_threadsafe(close(), runtime.loop).result(timeout=DRAIN_SECONDS + 10)
    runtime.loop.call_soon_threadsafe(runtime.loop.stop)
    runtime.thread.join()
    runtime.loop.close()


def runtime() -> Runtime:
    """This process's runtime, created on first use when no signal did it
    (the solo pool, beat, a shell)."""
    if _runtime is None or _runtime.pid != os.getpid():
        return start()
    return _runtime


def run(fn: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``fn(sessionmaker)`` to completion on this process's loop, in
    the caller's context (its log fields, the message's trace span)."""
    current = runtime()
    context = contextvars.copy_context()

    async def call() -> T:
        for var, value in context.items():
            var.set(value)
        return await fn(current.sessionmaker)

    return asyncio.run_coroutine_threadsafe(call(), current.loop).result()


async def start_in_background(
    claim: Callable[[], Awaitable[C | None]], work: Callable[[C], Coroutine[Any, Any, None]]
) -> C | None:
    """On the loop: wait for one of the process's WORKER_JOBS_PER_PROCESS
    places, ``claim()``, and run ``work(claimed)`` in the background, which
    holds the place until it ends. None (and the place freed) when there
    was nothing to claim."""
    current = runtime()
    if current.free is None:
        current.free = asyncio.Semaphore(current.slots)
    free = current.free
    await free.acquire()
    try:
        claimed = await claim()
    except BaseException:
        free.release()
        raise
    if claimed is None:
        free.release()
        return None
    task: asyncio.Task[None] = asyncio.create_task(work(claimed))
    current.running.add(task)

    def ended(done: asyncio.Task[Any]) -> None:
        free.release()
        current.running.discard(done)
        if not done.cancelled() and done.exception() is not None:
            log.error("a background job ended with an error", exc_info=done.exception())

    task.add_done_callback(ended)
    return claimed


@worker_process_init.connect
def _on_process_init(**_: Any) -> None:
    start()


@worker_process_shutdown.connect
def _on_process_shutdown(**_: Any) -> None:
    stop()
