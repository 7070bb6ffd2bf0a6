"""Models and migrations agree, and the migrations run both ways."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, Table, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.models import Base
from core.settings import Settings
from tests.integration.conftest import recreate_database


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_DIRECT_URL": url}
    return subprocess.run(
        ["alembic", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_upgrade_check_downgrade_upgrade(settings: Settings) -> None:
    name = (make_url(settings.db.direct_url.url).database or "") + "_migrations"
    await recreate_database(settings, name)
    url = (
        make_url(settings.db.direct_url.url)
        .set(database=name)
        .render_as_string(hide_password=False)
    )

    steps = [
        ("upgrade", "head"),
        ("check",),  # fails when the models hold a change no migration has
        ("downgrade", "base"),
        ("upgrade", "head"),
        ("check",),
    ]
    for step in steps:
        done = alembic(url, *step)
        assert done.returncode == 0, f"alembic {' '.join(step)}:\n{done.stdout}\n{done.stderr}"

    current = alembic(url, "current")
    heads = alembic(url, "heads")
    assert current.returncode == 0
    assert heads.stdout.split()[0] in current.stdout


async def test_the_comparison_detects_drift(settings: Settings) -> None:
    """The agreement check above can fail: a table the migrations lack is found."""
    name = (make_url(settings.db.direct_url.url).database or "") + "_drift"
    await recreate_database(settings, name)
    url = make_url(settings.db.direct_url.url).set(database=name)
    assert alembic(url.render_as_string(hide_password=False), "upgrade", "head").returncode == 0

    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    Table("not_migrated", drifted, Column("id", Integer, primary_key=True))

    def compare(connection: Connection, metadata: MetaData) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    engine = create_async_engine(url, connect_args=settings.db.direct_url.connect_args)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(compare, Base.metadata) == []
            diffs = await connection.run_sync(compare, drifted)
    finally:
        await engine.dispose()
    assert [(d[0], d[1].name) for d in diffs] == [("add_table", "not_migrated")]
