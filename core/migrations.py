"""What the database's schema revision should be, and what it is."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "migrate" / "alembic.ini"


def alembic_config() -> Config:
    """The project's Alembic configuration."""
    return Config(str(ALEMBIC_INI))


def head_revisions() -> set[str]:
    """The head revision(s) of the migration scripts shipped with this code."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def known_revisions() -> set[str]:
    """Every revision of the migration scripts shipped with this code."""
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


async def current_revisions(connection: AsyncConnection) -> set[str]:
    """The revision(s) recorded in the database (empty before the first migration)."""
    exists = await connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return set()
    rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
    return {row[0] for row in rows}
