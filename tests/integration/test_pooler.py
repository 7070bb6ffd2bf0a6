"""Pooler mode (DB_POOLER=transaction). `make test` runs the integration suite
a second time through PgBouncer in transaction mode; these tests check the
engine's configuration, and through PgBouncer they also show that reusing the
same statements over many short transactions raises no "prepared statement
... already exists / does not exist"."""

from __future__ import annotations

import asyncio
import socket

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool, QueuePool

from core.db import create_engine
from core.models import Item
from core.settings import Settings


def pooled(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"db": settings.db.model_copy(update={"db_pooler": "transaction"})}
    )


async def test_direct_mode_keeps_a_client_side_pool(settings: Settings) -> None:
    direct = settings.model_copy(
        update={"db": settings.db.model_copy(update={"db_pooler": "none"})}
    )
    engine = create_engine(direct.db)
    try:
        assert isinstance(engine.pool, QueuePool)
    finally:
        await engine.dispose()


async def test_pooler_mode_has_no_pool_no_statement_cache_and_unique_names(
    settings: Settings,
) -> None:
    engine = create_engine(pooled(settings).db)
    try:
        assert isinstance(engine.pool, NullPool)
        async with engine.connect() as connection:
            adapter = (await connection.get_raw_connection()).dbapi_connection
            # SQLAlchemy's asyncpg adapter: no statement cache, a name function.
            assert adapter._prepared_statement_cache is None  # type: ignore[union-attr]
            names = adapter._prepared_statement_name_func  # type: ignore[union-attr]
            first, second = names(), names()
            assert first != second
            assert first.startswith("__asyncpg_")
            # asyncpg's own cache is off too.
            driver = adapter.driver_connection  # type: ignore[union-attr]
            assert driver._stmt_cache.get_max_size() == 0
    finally:
        await engine.dispose()


async def test_many_short_transactions_reuse_statements_safely(settings: Settings) -> None:
    """The same parameterised statements, 8 at a time, 200 transactions."""
    engine = create_engine(pooled(settings).db)
    query = select(Item.id).where(Item.sku == bindparam("sku")).limit(1)

    async def one(n: int) -> int:
        async with engine.begin() as connection:
            await connection.execute(query, {"sku": f"none-{n}"})
            value = await connection.scalar(text("SELECT CAST(:n AS int) + 1"), {"n": n})
            return int(value)

    try:
        for start in range(0, 200, 8):
            results = await asyncio.gather(*(one(n) for n in range(start, start + 8)))
            assert results == [n + 1 for n in range(start, start + 8)]
    finally:
        await engine.dispose()


async def test_queries_travel_the_way_the_settings_say(
    settings: Settings, connection: AsyncConnection
) -> None:
    """Through a pooler Postgres sees the pooler's address, not this container's."""
    own_address = socket.gethostbyname(socket.gethostname())
    seen_by_postgres = await connection.scalar(text("SELECT host(inet_client_addr())"))
    assert (seen_by_postgres != own_address) == settings.db.pooled, (
        own_address,
        seen_by_postgres,
        settings.db.db_pooler,
    )
