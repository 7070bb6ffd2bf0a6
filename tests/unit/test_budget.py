"""The connection budget's arithmetic and its warning."""

from __future__ import annotations

import pytest

from core.budget import budget, describe, over_budget, worker_pool
from core.settings import DatabaseSettings, Settings, load_settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    # As in the test container: elsewhere the default SECRET_KEY is refused.
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DB_POOL_SIZE", "5")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "5")
    return load_settings()


def test_worst_case_is_processes_times_pool_plus_overflow(settings: Settings) -> None:
    b = budget(settings, api_processes=5, worker_processes=2)
    assert b.api == 5 * (5 + 5)
    assert b.worker == 2 * 3  # a child's pool: 2 + 1 overflow
    assert b.total == 50 + 6 + 1
    line = describe(b)
    assert "api 5 gunicorn workers x 10" in line
    assert "worker 2 processes (WORKER_CONCURRENCY) x 3" in line
    assert "= 57" in line


def test_a_worker_child_pools_what_one_task_uses_whatever_the_api_pool(
    settings: Settings,
) -> None:
    assert worker_pool() == (2, 1)
    for size, overflow in ((1, 0), (20, 30)):
        db = DatabaseSettings(db_pool_size=size, db_max_overflow=overflow)
        b = budget(settings.model_copy(update={"db": db}), api_processes=1, worker_processes=1)
        assert b.api_per_process == size + overflow
        assert b.worker_per_process == 2 + 1


def test_no_warning_up_to_80_percent(settings: Settings) -> None:
    b = budget(settings, api_processes=5, worker_processes=2)  # 57
    assert over_budget(b, 100) is None
    assert over_budget(b, 72) is None  # 80% of 72 = 57


def test_warning_names_the_numbers_and_the_settings(settings: Settings) -> None:
    b = budget(settings, api_processes=9, worker_processes=4)  # 90 + 12 + 1
    warning = over_budget(b, 100)
    assert warning is not None
    assert "103" in warning
    assert "max_connections=100 (80)" in warning
    for setting in ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "WEB_CONCURRENCY", "WORKER_CONCURRENCY"):
        assert setting in warning
