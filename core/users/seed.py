"""``python -m core.users.seed``: create the first superuser from
FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD. Idempotent."""

from __future__ import annotations

import asyncio
import logging

from core.db import create_engine, create_sessionmaker, transaction
from core.settings import Settings, load_settings_or_exit
from core.users.service import ensure_superuser

log = logging.getLogger("seed")


async def seed(settings: Settings) -> bool | None:
    """Create the superuser if configured; None when the variables are unset."""
    email, password = settings.auth.first_superuser_email, settings.auth.first_superuser_password
    if not email or not password:
        return None
    engine = create_engine(settings.db, application_name="seed")
    try:
        async with create_sessionmaker(engine)() as session, transaction(session):
            created = await ensure_superuser(session, email=email, password=password)
    finally:
        await engine.dispose()
    log.info("superuser %s %s", email, "created" if created else "already exists")
    return created


def main() -> None:
    """Entry point of ``make seed``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    if asyncio.run(seed(load_settings_or_exit())) is None:
        log.info("FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD unset; nothing to do")


if __name__ == "__main__":
    main()
