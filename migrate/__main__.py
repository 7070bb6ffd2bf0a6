"""``python -m migrate [revision]``: upgrade to ``head`` (or ``revision``) under a
Postgres advisory lock.

Two migration containers started together (two deploys, a scaled service) then
run one after the other: the second finds the schema at head and does nothing,
and both exit 0.

Migrations connect as the owner (DATABASE_OWNER_URL) and grant DATABASE_URL's
role its rights (migrate/env.py). Then that role is checked as the api will
use it: a superuser, or a member of a role that runs programs or touches the
server's files, stops the deploy in production (exit 1), and so does any
right beyond reading and writing rows once an owner URL of its own is set; a
single URL for everything (the owner's, as Render's Blueprint starts with)
is only warned about.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from alembic import command
from sqlalchemy import Connection, text

from core.db import create_engine
from core.db_roles import RoleSetupError, app_role, role_problems
from core.migrations import alembic_config
from core.settings import Settings, load_settings_or_exit
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
    db = load_settings_or_exit().db.as_owner()
    engine = create_engine(db, application_name="migrate", direct=True)
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


async def check_app_role(settings: Settings) -> None:
    """Connect as DATABASE_URL's role and log (in production: refuse, exit
    1) what it may do beyond reading and writing rows."""
    engine = create_engine(settings.db, application_name="migrate")
    try:
        async with engine.connect() as connection:
            dangerous, broader = await role_problems(connection)
            user = await connection.scalar(text("SELECT current_user"))
    finally:
        await engine.dispose()
    separate = app_role(settings.db) is not None
    refused = dangerous + (broader if separate else [])
    for problem in dangerous + broader:
        log.warning("DATABASE_URL's role %s %s (README, Database roles)", user, problem)
    if refused and settings.app.environment == "production":
        log.error("refusing to deploy: the api would connect as %s, which %s", user, refused[0])
        raise SystemExit(1)
    if not dangerous + broader:
        log.info("DATABASE_URL's role %s reads and writes rows and owns nothing", user)


def main() -> None:
    """Entry point of the ``migrate`` service."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    settings = load_settings_or_exit()
    revision = sys.argv[1] if len(sys.argv) > 1 else "head"
    try:
        asyncio.run(migrate(revision))
    except RoleSetupError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    asyncio.run(check_app_role(settings))
    # With FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD set, make sure the
    # first superuser exists (idempotent; a no-op when they are unset).
    asyncio.run(seed(settings))


if __name__ == "__main__":
    main()
