"""The connection budget's arithmetic and its warning."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.budget import budget, describe, over_budget, worker_pool
from core.settings import DatabaseSettings, Settings, SettingsError, load_settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    # As in the test container: elsewhere the default SECRET_KEY is refused.
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DB_POOL_SIZE", "5")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "5")
    # One job per worker process: a child's pool of 2 + 1 overflow.
    monkeypatch.setenv("WORKER_JOBS_PER_PROCESS", "1")
    return load_settings()


def test_worst_case_is_processes_times_pool_plus_overflow(settings: Settings) -> None:
    b = budget(settings, api_processes=5, worker_processes=2)
    assert b.api == 5 * (5 + 5)
    assert b.worker == 2 * 3  # a child's pool: 2 + 1 overflow
    assert b.total == 50 + 6 + 1
    line = describe(b)
    assert "api 1 replicas (API_REPLICAS) x 5 gunicorn workers x 10" in line
    assert "worker 1 replicas (WORKER_REPLICAS) x 2 processes (WORKER_CONCURRENCY) x 3" in line
    assert "scheduler 0" in line
    assert "= 57 for the whole fleet" in line


def test_the_fleet_counts_every_replica_each_service_may_scale_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DB_POOL_SIZE", "5")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "2")
    monkeypatch.setenv("API_REPLICAS", "3")
    monkeypatch.setenv("WORKER_REPLICAS", "4")
    monkeypatch.setenv("WORKER_JOBS_PER_PROCESS", "1")
    b = budget(load_settings(), api_processes=5, worker_processes=2)
    assert (b.api_replicas, b.worker_replicas) == (3, 4)
    assert b.api == 3 * 5 * (5 + 2)
    assert b.worker == 4 * 2 * 3
    assert b.total == 105 + 24 + 0 + 1  # the scheduler opens no connection
    line = describe(b)
    assert "api 3 replicas (API_REPLICAS) x 5 gunicorn workers x 7" in line
    assert "= 105" in line
    assert "worker 4 replicas (WORKER_REPLICAS) x 2 processes" in line
    assert "= 24" in line
    assert "= 130 for the whole fleet" in line


def test_replicas_default_to_one_and_are_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (settings.web.api_replicas, settings.jobs.worker_replicas) == (1, 1)
    for name, value in (("API_REPLICAS", "0"), ("WORKER_REPLICAS", "1001")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name):
            load_settings()
        monkeypatch.delenv(name)


def test_a_worker_child_pools_what_one_task_uses_whatever_the_api_pool(
    settings: Settings,
) -> None:
    assert worker_pool() == (2, 1)
    for size, overflow in ((1, 0), (20, 30)):
        db = DatabaseSettings(db_pool_size=size, db_max_overflow=overflow)
        b = budget(settings.model_copy(update={"db": db}), api_processes=1, worker_processes=1)
        assert b.api_per_process == size + overflow
        assert b.worker_per_process == 2 + 1


def test_a_worker_child_pools_a_connection_per_job_it_runs_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WORKER_JOBS_PER_PROCESS jobs on a child's loop: one pooled connection
    each and one for its claims, and a heartbeat of each in overflow."""
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("WORKER_JOBS_PER_PROCESS", "4")
    b = budget(load_settings(), api_processes=1, worker_processes=2)
    assert worker_pool(4) == (5, 4)
    assert b.worker_per_process == 9
    assert b.worker == 2 * 9


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
    for setting in (
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "WEB_CONCURRENCY",
        "WORKER_CONCURRENCY",
        "API_REPLICAS",
        "WORKER_REPLICAS",
        "DB_POOLER=transaction",
    ):
        assert setting in warning


def test_replicas_alone_can_pass_80_percent(settings: Settings) -> None:
    """One replica of each fits; the fleet they may scale to does not."""
    one = budget(settings, api_processes=5, worker_processes=2)  # 57
    assert over_budget(one, 100) is None
    fleet = replace(one, api_replicas=2)  # 50 more
    assert fleet.total == 107
    warning = over_budget(fleet, 200)  # 80% of 200 = 160: fits
    assert warning is None
    warning = over_budget(fleet, 133)  # 80% of 133 = 106: one past it
    assert warning is not None
    assert "the worst case of 107 database connections" in warning
    assert "max_connections=133 (106)" in warning
    assert "API_REPLICAS (now 2)" in warning
    # Worker replicas of 2 processes x 3: 50 + 6 x replicas + 1 migrate.
    assert over_budget(replace(one, worker_replicas=9), 133) is None  # 105
    assert over_budget(replace(one, worker_replicas=10), 133) is not None  # 111
