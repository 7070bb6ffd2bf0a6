"""Alembic environment: async engine from core settings, metadata from core.models.

Migrations connect as the owner of the tables (DATABASE_OWNER_URL, else the
direct URL) and, in the same transaction, grant DATABASE_URL's role its
rights (core/db_roles.py), so that every path (``python -m migrate``, plain
``alembic upgrade``) leaves the app role able to use the tables it adds.

When ``python -m migrate`` runs Alembic it passes in a connection that already
holds the advisory lock (``config.attributes["connection"]``); plain
``alembic ...`` commands open their own.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from core.db import create_engine
from core.db_roles import provision
from core.models import Base
from core.settings import load_settings_or_exit

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=load_settings_or_exit().db.as_owner().direct_url.url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations and the app role's grants on one connection, in
    one transaction."""
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
        provision(connection, load_settings_or_exit().db)


async def run_async_migrations() -> None:
    """Open a connection of our own (no pooling: this process is short-lived)."""
    db = load_settings_or_exit().db.as_owner()
    engine = create_engine(db, application_name="alembic", direct=True)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    """Use the caller's connection when given one, else open one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
