"""Prometheus metrics of the database connection pool, labelled by pool
(the engine's application_name: ``api``, ``worker``).

The gauges add up over the processes of a server (``livesum``: gunicorn's
workers, Celery's children), so ``appstack_db_pool_checked_out`` over
``appstack_db_pool_size + appstack_db_pool_max_overflow`` is the share of the
whole server's connections in use. ``appstack_db_pool_wait_seconds`` is how
long a caller waited for a connection, ping of an idle one and opening of a
new one included; ``appstack_db_pool_timeouts_total`` counts the callers that
gave up after DB_POOL_TIMEOUT.
"""

from __future__ import annotations

import time
from typing import Any, cast

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection

SIZE = Gauge(
    "appstack_db_pool_size",
    "Connections the pools keep open (DB_POOL_SIZE per process).",
    ["pool"],
    multiprocess_mode="livesum",
)
MAX_OVERFLOW = Gauge(
    "appstack_db_pool_max_overflow",
    "Extra connections the pools may open under load (DB_MAX_OVERFLOW per process).",
    ["pool"],
    multiprocess_mode="livesum",
)
CHECKED_OUT = Gauge(
    "appstack_db_pool_checked_out",
    "Connections in use right now.",
    ["pool"],
    multiprocess_mode="livesum",
)
OVERFLOW = Gauge(
    "appstack_db_pool_overflow",
    "Connections open beyond the pool size right now.",
    ["pool"],
    multiprocess_mode="livesum",
)
WAIT = Histogram(
    "appstack_db_pool_wait_seconds",
    "Time a caller waited for a pooled connection.",
    ["pool"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TIMEOUTS = Counter(
    "appstack_db_pool_timeouts",
    "Callers that got no connection within DB_POOL_TIMEOUT.",
    ["pool"],
)


class MeteredPool(AsyncAdaptedQueuePool):
    """The async engine's default pool, recording the metrics above under
    :attr:`label` (set by :func:`meter`)."""

    label = "appstack"
    # This pool's gauges and histogram, looked up once per label: a labels()
    # lookup on every checkout and return is a measurable share of a fast
    # request.
    _meters: tuple[Any, Any, Any, str] | None = None
    # Log as the pool it extends: under the "sqlalchemy" logger, quiet
    # (WARNING) unless asked for.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def connect(self) -> PoolProxiedConnection:
        """Check a connection out, timing the wait."""
        started = time.perf_counter()
        try:
            return super().connect()
        except PoolTimeout:
            TIMEOUTS.labels(self.label).inc()
            raise
        finally:
            self._labelled()[2].observe(time.perf_counter() - started)
            self._report()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        super()._do_return_conn(record)
        self._report()

    def recreate(self) -> MeteredPool:
        """The fresh pool of ``engine.dispose()`` keeps the label."""
        pool = cast("MeteredPool", super().recreate())
        pool.label = self.label
        return pool

    def _labelled(self) -> tuple[Any, Any, Any, str]:
        meters = self._meters
        if meters is None or meters[3] != self.label:
            label = self.label
            meters = (CHECKED_OUT.labels(label), OVERFLOW.labels(label), WAIT.labels(label), label)
            self._meters = meters
        return meters

    def _report(self) -> None:
        checked_out, overflow, _, _ = self._labelled()
        checked_out.set(self.checkedout())
        # Negative until pool_size connections were ever opened.
        overflow.set(max(self.overflow(), 0))


def meter(engine: AsyncEngine, label: str) -> None:
    """Record ``engine``'s pool (a :class:`MeteredPool`) under ``label``.
    One metered engine per label and process: a second would overwrite the
    first one's gauges."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, MeteredPool):
        return
    pool.label = label
    SIZE.labels(label).set(pool.size())
    MAX_OVERFLOW.labels(label).set(max(pool._max_overflow, 0))
    TIMEOUTS.labels(label)  # exported as 0 from the start: increase() sees the first
    pool._report()
