"""One event loop and one database engine per worker child process.

Celery's prefork pool forks children from the main process. An engine (and the
asyncpg connections in its pool) must never cross a fork or an event loop, so
each child builds its own in ``worker_process_init`` and disposes of it in
``worker_process_shutdown``. Task bodies are thin sync wrappers that call
:func:`run`, which drives a coroutine on this process's loop. Each child runs
one task at a time, so the loop is never re-entered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core import tracing
from core.budget import worker_pool
from core.db import create_engine, create_sessionmaker
from core.settings import get_settings

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loop and engine of one process."""

    pid: int
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


_runtime: Runtime | None = None


def start() -> Runtime:
    """Create this process's loop and engine (replacing any inherited ones)."""
    global _runtime
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings = get_settings()
    # One task at a time per child: a small pool (core.budget.worker_pool).
    pool_size, max_overflow = worker_pool()
    db = settings.db.model_copy(update={"db_pool_size": pool_size, "db_max_overflow": max_overflow})
    # A job's statements may run longer than a request's: a big import's COPY.
    engine = create_engine(
        db,
        application_name="worker",
        statement_timeout=settings.jobs.job_statement_timeout_seconds,
    )
    tracing.trace_engine(engine)
    _runtime = Runtime(os.getpid(), loop, engine, create_sessionmaker(engine))
    log.debug("worker runtime started in pid %s", _runtime.pid)
    return _runtime


def stop() -> None:
    """Dispose of the engine and close the loop."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None or runtime.pid != os.getpid():
        return
    runtime.loop.run_until_complete(runtime.engine.dispose())
    runtime.loop.close()


def runtime() -> Runtime:
    """This process's runtime, created on first use when no signal did it
    (the solo pool, beat, a shell)."""
    if _runtime is None or _runtime.pid != os.getpid():
        return start()
    return _runtime


def run(fn: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``fn(sessionmaker)`` to completion on this process's loop."""
    current = runtime()

    async def call() -> T:
        return await fn(current.sessionmaker)

    return current.loop.run_until_complete(call())


@worker_process_init.connect
def _on_process_init(**_: Any) -> None:
    start()


@worker_process_shutdown.connect
def _on_process_shutdown(**_: Any) -> None:
    stop()
