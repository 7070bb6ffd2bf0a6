"""What the database's schema revision should be, and what it is."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATE_DIR = Path(__file__).resolve().parent.parent / "migrate"
ALEMBIC_INI = MIGRATE_DIR / "alembic.ini"
VERSIONS = MIGRATE_DIR / "versions"


def alembic_config() -> Config:
    """The project's Alembic configuration (for the migrate entry point)."""
    from alembic.config import Config

    return Config(str(ALEMBIC_INI))


@cache
def _graph() -> dict[str, tuple[str, ...]]:
    """Each shipped revision and the revisions it follows, read from the
    scripts' ``revision`` and ``down_revision`` assignments. The api needs no
    more than this, and skipping Alembic's machinery saves every gunicorn
    worker several MB (tests/integration/test_health.py checks the result
    against Alembic's own answer)."""
    graph: dict[str, tuple[str, ...]] = {}
    for script in VERSIONS.glob("*.py"):
        values: dict[str, object] = {}
        for node in ast.parse(script.read_text()).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                        values[target.id] = ast.literal_eval(node.value)
        revision, down = values.get("revision"), values.get("down_revision")
        if isinstance(revision, str):
            parents = (down,) if isinstance(down, str) else tuple(down or ())  # type: ignore[arg-type]
            graph[revision] = parents
    return graph


def known_revisions() -> set[str]:
    """Every revision of the migration scripts shipped with this code."""
    return set(_graph())


def head_revisions() -> set[str]:
    """The head revision(s): those no other revision follows."""
    graph = _graph()
    followed = {parent for parents in graph.values() for parent in parents}
    return set(graph) - followed


async def current_revisions(connection: AsyncConnection) -> set[str]:
    """The revision(s) recorded in the database (empty before the first migration)."""
    exists = await connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return set()
    rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
    return {row[0] for row in rows}
