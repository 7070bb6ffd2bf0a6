"""Production refusals of the owner's URL and of a published Redis password."""

from __future__ import annotations

import pytest

from core.settings import SettingsError, load_settings
from tests.unit.test_settings import clean_env, production

__all__ = ["clean_env"]  # its autouse fixture keeps the container's variables out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_OWNER_URL": "postgres://owner:changethis@db:5432/app"},
            "DATABASE_OWNER_URL has a missing or placeholder password",
        ),
        (
            {"DATABASE_OWNER_URL": "postgres://owner@db:5432/app"},
            "DATABASE_OWNER_URL has a missing or placeholder password",
        ),
        ({"REDIS_URL": "redis://:changethis@redis:6379/0"}, "REDIS_URL has a placeholder password"),
        ({"REDIS_URL": "redis://:app_rw@redis:6379/0"}, "REDIS_URL has a placeholder password"),
    ],
)
def test_production_refuses(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    production(monkeypatch, **env)
    with pytest.raises(SettingsError, match=message):
        load_settings()


@pytest.mark.parametrize(
    "redis_url",
    [
        "redis://red-abc123:6379",  # Render's internal Key Value: private, no password
        "redis://:Zr8-a-long-random-redis-password@redis:6379/0",
    ],
)
def test_production_accepts(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    production(
        monkeypatch,
        REDIS_URL=redis_url,
        DATABASE_OWNER_URL="postgres://owner:Yq8-long-owner-password@db:5432/app",
    )
    settings = load_settings()
    assert settings.db.as_owner().direct_url.url.startswith("postgresql+asyncpg://owner:")
    assert settings.db.url.url.startswith("postgresql+asyncpg://app:")
