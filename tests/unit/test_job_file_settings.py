"""RESULT_RETENTION_HOURS and MAX_STORED_FILE_BYTES_PER_USER: defaults and bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.jobs.storage import FileLimits
from core.queue import TASK_PURGE_RESULTS, celery_config
from core.settings import JobSettings, load_settings

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in JobSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults() -> None:
    settings = JobSettings()
    assert settings.result_retention_hours == 168
    assert settings.max_stored_file_bytes_per_user == 200 * MIB
    assert FileLimits.of(settings) == FileLimits(200 * MIB, 168)


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULT_RETENTION_HOURS", "24")
    monkeypatch.setenv("MAX_STORED_FILE_BYTES_PER_USER", str(50 * MIB))
    settings = JobSettings()
    assert (settings.result_retention_hours, settings.max_stored_file_bytes_per_user) == (
        24,
        50 * MIB,
    )


@pytest.mark.parametrize("hours", [1, 8760])
def test_retention_bounds_are_accepted(hours: int) -> None:
    assert JobSettings(result_retention_hours=hours).result_retention_hours == hours


@pytest.mark.parametrize("hours", [0, -1, 8761])
def test_retention_out_of_bounds_is_refused(hours: int) -> None:
    with pytest.raises(ValidationError, match="result_retention_hours"):
        JobSettings(result_retention_hours=hours)


@pytest.mark.parametrize(
    ("quota", "upload", "ok"),
    [(20 * MIB, 20 * MIB, True), (20 * MIB - 1, 20 * MIB, False), (1, 1, True), (0, 1, False)],
)
def test_the_quota_holds_at_least_the_largest_upload(quota: int, upload: int, ok: bool) -> None:
    values: dict[str, Any] = {"max_stored_file_bytes_per_user": quota, "max_upload_bytes": upload}
    if ok:
        assert JobSettings(**values).max_stored_file_bytes_per_user == quota
    else:
        with pytest.raises(ValidationError, match=r"MAX_STORED_FILE_BYTES_PER_USER|greater"):
            JobSettings(**values)


def test_the_scheduler_purges_results_on_the_maintenance_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    config = celery_config(load_settings())
    [entry] = [e for e in config["beat_schedule"].values() if e["task"] == TASK_PURGE_RESULTS]
    assert entry["schedule"] == entry["options"]["expires"] == 600
    assert config["task_routes"][TASK_PURGE_RESULTS] == {"queue": "maintenance"}
