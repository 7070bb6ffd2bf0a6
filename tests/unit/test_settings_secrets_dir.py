"""Settings read from files in a secrets directory (Kubernetes and Swarm secrets)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from core import settings_base
from core.settings import Settings, SettingsError, load_settings
from core.settings_base import SECRETS_DIR_VARIABLE, secrets_dir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the surrounding environment leaks into these tests."""
    for group in Settings.model_fields.values():
        assert group.annotation is not None
        for name in group.annotation.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv(SECRETS_DIR_VARIABLE, raising=False)
    # The development key is accepted in tests only.
    monkeypatch.setenv("ENVIRONMENT", "test")


@pytest.fixture
def secrets_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty secrets directory named by SETTINGS_SECRETS_DIR."""
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path))
    return tmp_path


def test_values_come_from_files(secrets_path: Path) -> None:
    """Each file holds one setting; the trailing newline of ``kubectl create
    secret --from-file`` or an editor is not part of the value."""
    key = secrets.token_urlsafe(36)
    (secrets_path / "SECRET_KEY").write_text(key + "\n")
    (secrets_path / "DATABASE_URL").write_text("postgres://rw:pw@db.internal:5432/app\n")
    (secrets_path / "WORKER_CONCURRENCY").write_text("7")

    settings = load_settings()

    assert settings.app.secret_key == key
    assert settings.db.database_url == "postgres://rw:pw@db.internal:5432/app"
    assert settings.jobs.worker_concurrency == 7


def test_environment_wins_over_files(secrets_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable set in the environment overrides the file; an empty one does not."""
    (secrets_path / "LOG_LEVEL").write_text("ERROR")
    (secrets_path / "PORT").write_text("9000")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("PORT", "")

    settings = load_settings()

    assert settings.app.log_level == "WARNING"
    assert settings.web.port == 9000


def test_a_bad_file_value_names_the_setting(secrets_path: Path) -> None:
    (secrets_path / "PORT").write_text("eighty")

    with pytest.raises(SettingsError, match=r"^invalid environment: PORT: "):
        load_settings()


def test_files_of_other_names_are_ignored(secrets_path: Path) -> None:
    """A mounted Secret may hold keys that are no setting (a backup tool's)."""
    (secrets_path / "S3_ACCESS_KEY").write_text("not ours")

    assert load_settings().web.port == 8000


def test_a_missing_configured_directory_stops_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret volume that did not mount must not leave the app on defaults."""
    missing = tmp_path / "not-mounted"
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(missing))

    with pytest.raises(SettingsError, match=SECRETS_DIR_VARIABLE):
        load_settings()


def test_default_directory_is_read_only_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, SETTINGS_SECRETS_DIR falls back to /run/secrets if there is one."""
    default = tmp_path / "run-secrets"
    monkeypatch.setattr(settings_base, "DEFAULT_SECRETS_DIR", default)
    assert secrets_dir() is None
    assert load_settings().web.port == 8000

    default.mkdir()
    (default / "PORT").write_text("8123")
    assert secrets_dir() == default
    assert load_settings().web.port == 8123
