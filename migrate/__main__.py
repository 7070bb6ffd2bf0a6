"""``python -m migrate [revision]``: upgrade to ``head`` (or ``revision``) under a
Postgres advisory lock.

Two migration containers started together (two deploys, a scaled service) then
run one after the other: the second finds the schema at head and does nothing,
and both exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from alembic import command
from sqlalchemy import Connection, text

from core.db import create_engine
from core.migrations import alembic_config
from core.settings import load_settings_or_exit
from core.users.seed import seed

# Any constant shared by every copy of this program; "appstack" in ASCII.
ADVISORY_LOCK_KEY = 0x61707073746163

log = logging.getLogger("migrate")


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    # Keep main()'s logging: alembic.ini's would silence the seed's messages.
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


async def migrate(revision: str = "head") -> None:
    """Take the lock, upgrade, release the lock."""
    engine = create_engine(load_settings_or_exit().db, application_name="migrate", direct=True)
    try:
        async with engine.connect() as connection:
            started = time.monotonic()
            await connection.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            await connection.commit()
            log.info("holding the migration lock (waited %.1fs)", time.monotonic() - started)
            try:
                await connection.run_sync(_upgrade, revision)
                await connection.commit()
            finally:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
                await connection.commit()
    finally:
        await engine.dispose()


def main() -> None:
    """Entry point of the ``migrate`` service."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    settings = load_settings_or_exit()
    revision = sys.argv[1] if len(sys.argv) > 1 else "head"
    asyncio.run(migrate(revision))
    # With FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD set, make sure the
    # first superuser exists (idempotent; a no-op when they are unset).
    asyncio.run(seed(settings))


if __name__ == "__main__":
    main()
