"""core.db.create_engine(direct=True): the engine of migrations and of the
start-up connection budget (short-lived processes, session-level work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from core.db import create_engine
from core.settings import DatabaseSettings, Settings


async def _driver(engine: AsyncEngine) -> Any:
    async with engine.connect() as connection:
        return (await connection.get_raw_connection()).dbapi_connection


async def test_a_direct_engine_uses_the_direct_url_and_keeps_no_pool(settings: Settings) -> None:
    engine = create_engine(settings.db, application_name="migrate", direct=True)
    try:
        assert isinstance(engine.pool, NullPool)
        assert engine.url == make_url(settings.db.direct_url.url)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW application_name")) == "migrate"
    finally:
        await engine.dispose()


def _pooled(db: DatabaseSettings, direct_url: str | None) -> DatabaseSettings:
    return db.model_copy(update={"db_pooler": "transaction", "database_direct_url": direct_url})


async def test_a_direct_url_past_the_pooler_keeps_the_statement_cache(settings: Settings) -> None:
    db = _pooled(settings.db, settings.db.direct_url.url)
    engine = create_engine(db, application_name="migrate", direct=True)
    try:
        assert (await _driver(engine))._prepared_statement_cache is not None
    finally:
        await engine.dispose()


async def test_without_a_direct_url_the_pooler_rules_apply(settings: Settings) -> None:
    """DB_POOLER=transaction and no DATABASE_DIRECT_URL: the "direct" URL is
    the pooler's, so no statement is cached there either."""
    engine = create_engine(_pooled(settings.db, None), application_name="migrate", direct=True)
    try:
        assert isinstance(engine.pool, NullPool)
        assert engine.url == make_url(settings.db.url.url)
        adapter = await _driver(engine)
        assert adapter._prepared_statement_cache is None
        assert adapter.driver_connection._stmt_cache.get_max_size() == 0
    finally:
        await engine.dispose()
