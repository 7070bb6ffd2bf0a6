"""The connection budget against the real Postgres."""

from __future__ import annotations

import logging

import pytest

from core.budget import log_budget, server_max_connections
from core.settings import Settings

# The database must exist (the engine fixture creates and migrates it), whatever
# ran first.
pytestmark = pytest.mark.usefixtures("engine")


async def test_max_connections_is_read_from_the_server(settings: Settings) -> None:
    unset = settings.db.model_copy(update={"db_max_connections": None})
    assert await server_max_connections(unset) == 100  # the server's default


async def test_db_max_connections_wins_over_the_server(settings: Settings) -> None:
    configured = settings.db.model_copy(update={"db_max_connections": 500})
    assert await server_max_connections(configured) == 500


def test_a_budget_past_80_percent_is_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    direct = settings.db.model_copy(update={"db_max_connections": None, "db_pooler": "none"})
    configured = settings.model_copy(update={"db": direct})
    with caplog.at_level(logging.INFO, logger="appstack.budget"):
        log_budget(configured, api_processes=3, worker_processes=2)  # well under 80
        assert [r.levelno for r in caplog.records] == [logging.INFO]
        assert "max_connections=100" in caplog.records[0].getMessage()
        caplog.clear()
        log_budget(configured, api_processes=40, worker_processes=2)
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.WARNING]
    assert "exceeds 80% of max_connections=100" in caplog.records[1].getMessage()
