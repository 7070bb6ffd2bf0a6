"""Models and migrations agree, and the migrations run both ways."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import make_url

from core.settings import Settings
from tests.integration.conftest import recreate_database


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        ["alembic", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_upgrade_check_downgrade_upgrade(settings: Settings) -> None:
    name = (make_url(settings.db.url.url).database or "") + "_migrations"
    await recreate_database(settings, name)
    url = make_url(settings.db.url.url).set(database=name).render_as_string(hide_password=False)

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


async def test_check_detects_a_model_without_migration(settings: Settings) -> None:
    """The agreement test above can fail: a database at base disagrees with the models."""
    name = (make_url(settings.db.url.url).database or "") + "_drift"
    await recreate_database(settings, name)
    url = make_url(settings.db.url.url).set(database=name).render_as_string(hide_password=False)
    assert alembic(url, "upgrade", "head").returncode == 0
    assert alembic(url, "downgrade", "base").returncode == 0
    drift = alembic(url, "check")
    assert drift.returncode != 0
    assert "New upgrade operations detected" in drift.stdout + drift.stderr
