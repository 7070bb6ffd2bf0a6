"""DB_STATEMENT_TIMEOUT_SECONDS and JOB_STATEMENT_TIMEOUT_SECONDS: their
bounds, and how seconds become Postgres's statement_timeout."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.db import _milliseconds
from core.settings import DatabaseSettings, JobSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DB_STATEMENT_TIMEOUT_SECONDS", "JOB_STATEMENT_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    assert DatabaseSettings().db_statement_timeout_seconds == 30
    assert JobSettings().job_statement_timeout_seconds == 600


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("DB_STATEMENT_TIMEOUT_SECONDS", "0.001", True),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "3600", True),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "0", False),  # no limit is not an option
        ("DB_STATEMENT_TIMEOUT_SECONDS", "3601", False),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "soon", False),
        ("JOB_STATEMENT_TIMEOUT_SECONDS", "1", True),
        ("JOB_STATEMENT_TIMEOUT_SECONDS", "1800", True),
        ("JOB_STATEMENT_TIMEOUT_SECONDS", "0.5", False),
        # Beyond the task's hard time limit the limit could never fire.
        ("JOB_STATEMENT_TIMEOUT_SECONDS", "1801", False),
    ],
)
def test_bounds(monkeypatch: pytest.MonkeyPatch, name: str, value: str, accepted: bool) -> None:
    monkeypatch.setenv(name, value)
    cls = DatabaseSettings if name.startswith("DB_") else JobSettings
    if accepted:
        assert getattr(cls(), name.lower()) == float(value)
    else:
        with pytest.raises(ValidationError, match=name.lower()):
            cls()


@pytest.mark.parametrize(
    ("seconds", "milliseconds"),
    [(30, 30_000), (0.05, 50), (0.0004, 1), (0, 0), (600, 600_000)],
)
def test_seconds_become_milliseconds_and_a_limit_never_rounds_to_none(
    seconds: float, milliseconds: int
) -> None:
    assert _milliseconds(seconds) == milliseconds
