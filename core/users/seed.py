"""``python -m core.users.seed``: create the first superuser from
FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD. Idempotent.

Exits 1, with one line in the log, when that email belongs to an account that
is not a superuser (someone registered it first, and promoting their account
would hand them the service), or when the password is one registration would
refuse (a common one, or one containing the email's name).
"""

from __future__ import annotations

import asyncio
import logging

from core.db import create_engine, create_sessionmaker, transaction
from core.errors import Conflict
from core.settings import Settings, load_settings_or_exit
from core.users.passwords import password_problem
from core.users.service import ensure_superuser

log = logging.getLogger("seed")


async def seed(settings: Settings) -> bool | None:
    """Create the superuser if configured; None when the variables are unset.

    Raises ``SystemExit(1)`` after logging one line when the email belongs to
    an account that is not a superuser (the ``migrate`` service then fails too).
    """
    email, password = settings.auth.first_superuser_email, settings.auth.first_superuser_password
    if not email or not password:
        return None
    weak = password_problem(password, email)
    if weak is not None:
        log.error("FIRST_SUPERUSER_PASSWORD refused: %s", weak)
        raise SystemExit(1)
    engine = create_engine(settings.db, application_name="seed")
    try:
        async with create_sessionmaker(engine)() as session, transaction(session):
            created = await ensure_superuser(session, email=email, password=password)
    except Conflict:
        log.error(
            "FIRST_SUPERUSER_EMAIL %s belongs to an account that is not a superuser; "
            "refusing (promote it by hand or choose another email)",
            email,
        )
        raise SystemExit(1) from None
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
