"""The database connection budget, logged by the api and the worker at start-up.

Every gunicorn worker and every Celery child owns an engine with its own pool,
so the worst case is replicas x processes x (pool size + overflow) per
service, with the replicas each service may scale to (API_REPLICAS,
WORKER_REPLICAS). Added up over the fleet it must stay well below Postgres'
``max_connections``, or a busy moment ends in "too many connections" errors.
Both services log the same fleet-wide figure and warn when it passes 80 % of
the limit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text

from core.db import create_engine
from core.settings import DatabaseSettings, Settings

log = logging.getLogger("appstack.budget")

WARN_FRACTION = 0.8
# A Celery child runs up to WORKER_JOBS_PER_PROCESS jobs at once on its
# loop (see worker.runner): a session for each, and one for its claims,
# pooled; a heartbeat or progress update of each beside it, in overflow.
# The migrate service's single connection during a deploy.
MIGRATE_CONNECTIONS = 1
# The scheduler only sends messages to Redis: it never opens a database
# connection, however many schedulers run.
SCHEDULER_CONNECTIONS = 0


def worker_pool(jobs_per_process: int = 1) -> tuple[int, int]:
    """Pool size and overflow of one Celery child's engine: what its jobs
    at once can use, whatever the api's pool settings."""
    return jobs_per_process + 1, jobs_per_process


@dataclass(frozen=True)
class Budget:
    """Worst-case connections of every replica of the api and the worker."""

    api_processes: int
    api_per_process: int
    worker_processes: int
    worker_per_process: int
    api_replicas: int = 1
    worker_replicas: int = 1

    @property
    def api(self) -> int:
        """The api's worst case, over all its replicas."""
        return self.api_replicas * self.api_processes * self.api_per_process

    @property
    def worker(self) -> int:
        """The worker's worst case, over all its replicas."""
        return self.worker_replicas * self.worker_processes * self.worker_per_process

    @property
    def total(self) -> int:
        """The fleet: both services, the scheduler and a running migration."""
        return self.api + self.worker + SCHEDULER_CONNECTIONS + MIGRATE_CONNECTIONS


def budget(settings: Settings, *, api_processes: int, worker_processes: int) -> Budget:
    """The worst case for these process counts, the configured pools and the
    replicas each service may scale to."""
    db = settings.db
    return Budget(
        api_processes=api_processes,
        api_per_process=db.db_pool_size + db.db_max_overflow,
        worker_processes=worker_processes,
        worker_per_process=sum(worker_pool(settings.jobs.worker_jobs_per_process)),
        api_replicas=settings.web.api_replicas,
        worker_replicas=settings.jobs.worker_replicas,
    )


def describe(b: Budget) -> str:
    """One line with every factor, for the start-up log."""
    return (
        f"database connections, worst case: api {b.api_replicas} replicas (API_REPLICAS) x "
        f"{b.api_processes} gunicorn workers x {b.api_per_process} "
        f"(DB_POOL_SIZE + DB_MAX_OVERFLOW) = {b.api}; worker {b.worker_replicas} replicas "
        f"(WORKER_REPLICAS) x {b.worker_processes} processes (WORKER_CONCURRENCY) x "
        f"{b.worker_per_process} = {b.worker}; scheduler {SCHEDULER_CONNECTIONS}; "
        f"+ {MIGRATE_CONNECTIONS} migrate = {b.total} for the whole fleet"
    )


def over_budget(b: Budget, max_connections: int) -> str | None:
    """The warning to log when the total passes 80 % of ``max_connections``."""
    limit = int(max_connections * WARN_FRACTION)
    if b.total <= limit:
        return None
    return (
        f"the worst case of {b.total} database connections exceeds 80% of "
        f"max_connections={max_connections} ({limit}); lower DB_POOL_SIZE / DB_MAX_OVERFLOW "
        f"(now {b.api_per_process} per api process), WEB_CONCURRENCY (now "
        f"{b.api_processes}), WORKER_CONCURRENCY (now {b.worker_processes}), API_REPLICAS "
        f"(now {b.api_replicas}) or WORKER_REPLICAS (now {b.worker_replicas}), put a "
        f"transaction pooler in front (DB_POOLER=transaction), or raise max_connections"
    )


ASK_TIMEOUT_SECONDS = 5.0


async def server_max_connections(db: DatabaseSettings) -> int | None:
    """DB_MAX_CONNECTIONS, else Postgres' ``SHOW max_connections``; None when
    the server cannot be asked (the budget is then logged without a limit)."""
    if db.db_max_connections is not None:
        return db.db_max_connections
    engine = create_engine(db, application_name="budget", direct=True)
    try:
        async with asyncio.timeout(ASK_TIMEOUT_SECONDS), engine.connect() as connection:
            value = await connection.scalar(text("SHOW max_connections"))
        return int(value)
    except Exception as exc:  # a start-up log line must never stop the service
        log.info("could not read max_connections (%s); set DB_MAX_CONNECTIONS", exc)
        return None
    finally:
        await engine.dispose()


def log_budget(settings: Settings, *, api_processes: int, worker_processes: int) -> Budget:
    """Log the budget, and warn when it is too close to the server's limit.

    Through a transaction pooler (DB_POOLER=transaction) the pooler's own pool
    bounds the server's connections, so there is nothing to compare.
    """
    b = budget(settings, api_processes=api_processes, worker_processes=worker_processes)
    if settings.db.pooled:
        log.info("%s (client connections to the pooler)", describe(b))
        return b
    max_connections = asyncio.run(server_max_connections(settings.db))
    limit = f"max_connections={max_connections}" if max_connections else "max_connections unknown"
    log.info("%s; %s", describe(b), limit)
    warning = over_budget(b, max_connections) if max_connections else None
    if warning:
        log.warning(warning)
    return b
