"""The engine's own job kinds: a ping (the smoke test of the whole path, API
to worker to Postgres) and, outside production, a poison job."""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.jobs.context import JobContext, Output
from core.jobs.kinds import JobKind

log = logging.getLogger(__name__)


async def ping(session: AsyncSession, ctx: JobContext) -> Output:
    """The smallest real job: proves the worker reads and writes Postgres.
    Its result names neither host nor process, so that no user learns the
    workers' identities."""
    return Output(result={"pong": ctx.job.payload.get("message", "pong")})


async def ping_naming_its_worker(session: AsyncSession, ctx: JobContext) -> Output:
    """A ping whose result also names the host and process that ran it
    (outside production: tests check that every worker process takes work)."""
    output = await ping(session, ctx)
    result: dict[str, Any] = {**(output.result or {})}
    return Output(result=result | {"worker": socket.gethostname(), "pid": os.getpid()})


async def crash(session: AsyncSession, ctx: JobContext) -> Output:
    """A poison job: kills the process running it, every time. Only outside
    production, to prove that such a job ends ``failed`` instead of looping."""
    log.warning("job %s: debug.crash is killing worker process %s", ctx.id, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


PING = JobKind("ping", ping, debug_handler=ping_naming_its_worker)
# No route creates it; outside production the fault tests insert it with SQL.
CRASH = JobKind("debug.crash", crash, debug=True)
JOB_KINDS = (PING, CRASH)
