"""Engines and sessions.

Each process creates its own engine (the API in its lifespan, each Celery child
in ``worker_process_init``): an engine must never be shared across event loops
or across a fork.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Executable, Row, event, func, select
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from core.db_metrics import MeteredPool, meter
from core.errors import AppError
from core.settings import DatabaseSettings
from core.urls import DatabaseURL

AfterCommit = Callable[[], Awaitable[None]]
M = TypeVar("M")
_AFTER_COMMIT = "after_commit"


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def create_engine(
    settings: DatabaseSettings,
    *,
    application_name: str = "appstack",
    direct: bool = False,
    statement_timeout: float | None = None,
) -> AsyncEngine:
    """An asyncpg engine, the one way every process (api, worker, migrations,
    the start-up connection budget) connects.

    Default: DATABASE_URL with the pool configured from the environment.
    With DB_POOLER=transaction the pooler owns the connections: the engine
    keeps none (NullPool), and since consecutive transactions may land on
    different server connections, asyncpg caches no prepared statements and
    names each one uniquely, so no "prepared statement ... already exists /
    does not exist" can occur.

    ``direct=True``: the direct URL (DATABASE_DIRECT_URL, else DATABASE_URL)
    for session-level work in a short-lived process, such as migrations under
    their advisory lock; no pool (NullPool), each connection closed when
    returned. The pooler rules apply only when that URL is the pooler's
    (DB_POOLER=transaction without DATABASE_DIRECT_URL).

    ``application_name`` names the connections in ``pg_stat_activity``
    unless the URL sets one.

    ``statement_timeout``: seconds any one statement may run before Postgres
    cancels it (SQLSTATE 57014, :func:`statement_cancelled`); default
    DB_STATEMENT_TIMEOUT_SECONDS, and for ``direct`` engines none (0): a long
    migration must not be cancelled halfway. See :func:`_limit_statements`.
    """
    url = settings.direct_url if direct else settings.url
    through_pooler = settings.pooled and not (direct and settings.database_direct_url)
    connect_args = _connect_args(url, application_name, through_pooler)
    if statement_timeout is None:
        statement_timeout = 0.0 if direct else settings.db_statement_timeout_seconds
    timeout_ms = _milliseconds(statement_timeout)
    if not through_pooler:
        connect_args["server_settings"]["statement_timeout"] = str(timeout_ms)
    if direct or through_pooler:
        engine = create_async_engine(url.url, connect_args=connect_args, poolclass=NullPool)
        if through_pooler:
            _limit_statements(engine, timeout_ms)
        return engine
    engine = create_async_engine(
        url.url,
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # The most recently returned connection first: under load a few hot
        # connections serve, and the idle ones are the ones that get pinged.
        pool_use_lifo=True,
        # The default pool, recording its size, use and waits (core/db_metrics.py).
        poolclass=MeteredPool,
    )
    meter(engine, application_name)
    _ping_after_idle(engine)
    return engine


def _connect_args(url: DatabaseURL, application_name: str, through_pooler: bool) -> dict[str, Any]:
    """The URL's asyncpg arguments, a default application_name, and for a
    transaction pooler no statement cache and unique statement names."""
    connect_args = dict(url.connect_args)
    server_settings = dict(connect_args.pop("server_settings", {}))
    server_settings.setdefault("application_name", application_name)
    connect_args["server_settings"] = server_settings
    if through_pooler:
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    return connect_args


def _milliseconds(seconds: float) -> int:
    """statement_timeout's unit; a positive limit never rounds down to 0 (none)."""
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def _limit_statements(engine: AsyncEngine, timeout_ms: int) -> None:
    """The statement limit through a transaction pooler: SET LOCAL at the
    start of every transaction (a prepared statement: two round trips more).

    A direct connection gets it as a startup parameter (asyncpg's
    ``server_settings``), for every statement and at no cost. PgBouncer
    refuses that parameter ("unsupported startup parameter") and silently
    drops it from ``options``; a session-level SET would stay on a server
    connection that other clients then get. Statements in autocommit (the
    api's read sessions) have no transaction to set it in: through a pooler
    they get the role's default (README, DB_STATEMENT_TIMEOUT_SECONDS)."""

    @event.listens_for(engine.sync_engine, "begin")
    def _set_local(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        # Inside the begin event SQLAlchemy starts no second transaction.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout_ms}")


# SQLAlchemy's pool_pre_ping pings on every checkout, which with asyncpg is
# three round trips (BEGIN, a query, ROLLBACK) on every request. A connection
# in use moments ago is alive; one idle longer may have died with a Postgres
# restart or an idle timeout of the network. So: ping only those.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _returned(_: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool drops this connection and hands out another one.
            raise DisconnectionError(f"a pooled connection is dead: {exc}") from exc


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (no lazy reload on access)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: autocommit, so no BEGIN and
    COMMIT round trips around their queries. Same pool as the engine's."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the surrounding :func:`transaction` has committed.

    Used to send broker messages only for rows that are really stored.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error, then run the after-commit callbacks.

    Services never commit; the owner of the session (a request, a task) does,
    through this context manager.
    """
    try:
        yield session
    except BaseException:
        session.info.pop(_AFTER_COMMIT, None)
        await session.rollback()
        raise
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        await callback()


def connection_lost(exc: DBAPIError) -> bool:
    """Whether ``exc`` means the database could not be reached or the
    connection broke (Postgres down or restarted), not a bad statement."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a database error, raw from asyncpg or wrapped by
    SQLAlchemy; empty for anything else."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return str(getattr(exc, "sqlstate", None) or "")


# query_canceled: the statement ran past its statement_timeout (or someone
# cancelled it with pg_cancel_backend).
QUERY_CANCELED = "57014"


def statement_cancelled(exc: BaseException) -> bool:
    """Whether the server cancelled the statement, usually for running
    longer than its statement_timeout."""
    return sqlstate(exc) == QUERY_CANCELED


async def save_unique(session: AsyncSession, obj: object, conflict: AppError) -> None:
    """Add and flush ``obj`` in a savepoint, then reload it. A constraint
    violation (a concurrent request stored the same key) raises ``conflict``
    and leaves the surrounding transaction usable."""
    try:
        async with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        raise conflict from None
    await session.refresh(obj)


async def fetch_page(
    session: AsyncSession,
    model: type[M],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any],
    limit: int,
    offset: int,
) -> tuple[Sequence[M], int]:
    """Rows ``offset`` to ``offset + limit`` of ``model`` matching ``where``,
    and how many match in all. ``order_by`` should end with a unique column,
    so that pages never overlap or skip rows."""
    total = await session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    rows = await session.scalars(
        select(model).where(*where).order_by(*order_by).limit(limit).offset(offset)
    )
    return rows.all(), total


async def first_row(
    bind: AsyncEngine | AsyncConnection, statement: Executable, params: dict[str, Any]
) -> Row[Any] | None:
    """The first row of ``statement`` in Core, without a Session: on ``bind``,
    an engine (a pooled connection is taken for the statement) or a
    connection already open."""
    if isinstance(bind, AsyncConnection):
        return (await bind.execute(statement, params)).first()
    async with bind.connect() as connection:
        return (await connection.execute(statement, params)).first()
