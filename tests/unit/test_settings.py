"""Settings parsing, URL normalisation and start-up errors."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from core.settings import Settings, SettingsError, load_settings
from core.settings_checks import DEV_SECRET_KEY
from core.urls import normalize_database_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the surrounding environment (the test container's
    DATABASE_URL, DATABASE_DIRECT_URL, ...) leaks into these tests."""
    for group in Settings.model_fields.values():
        assert group.annotation is not None
        for name in group.annotation.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:p@db:5432/app",
        "postgresql://u:p@db:5432/app",
        "postgresql+asyncpg://u:p@db:5432/app",
    ],
)
def test_database_url_schemes_are_normalised(raw: str) -> None:
    url = normalize_database_url(raw)
    assert url.url == "postgresql+asyncpg://u:p@db:5432/app"
    assert url.connect_args == {}


def test_default_port_is_added() -> None:
    assert (
        normalize_database_url("postgres://u:p@db/app").url
        == "postgresql+asyncpg://u:p@db:5432/app"
    )


@pytest.mark.parametrize("mode", ["disable", "prefer", "require", "verify-ca", "verify-full"])
def test_sslmode_becomes_asyncpg_ssl(mode: str) -> None:
    url = normalize_database_url(f"postgres://u:p@db:5432/app?sslmode={mode}")
    assert url.url == "postgresql+asyncpg://u:p@db:5432/app"
    assert url.connect_args == {"ssl": mode}


def test_other_supported_query_parameters() -> None:
    url = normalize_database_url(
        "postgresql://u:p@db/app?connect_timeout=5&application_name=reports"
    )
    assert url.connect_args == {"timeout": 5, "server_settings": {"application_name": "reports"}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("mysql://u:p@db/app", "must start with postgres://"),
        ("db:5432/app", "must start with postgres://"),
        ("postgres://u:p@db:notaport/app", "port that is not a number"),
        ("postgres:///app", "has no host"),
        ("postgres://u:p@db/app?sslmode=sometimes", "sslmode='sometimes'"),
        ("postgres://u:p@db/app?pgbouncer=true", "unsupported query parameter 'pgbouncer'"),
        ("postgres://u:p@db/app?connect_timeout=soon", "connect_timeout='soon'"),
    ],
)
def test_bad_database_urls(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalize_database_url(raw)


def random_key() -> str:
    """A key like the one `make env` writes into a new .env."""
    return secrets.token_urlsafe(48)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", random_key())  # the one thing without a usable default
    settings = load_settings()
    assert settings.app.environment == "development"
    assert settings.web.port == 8000
    assert settings.web.web_concurrency is None
    assert settings.db.db_pool_size == 10
    assert settings.db.db_max_overflow == 0


def test_values_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@host.example:6543/x?sslmode=require")
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@cache.example:6380/2")
    monkeypatch.setenv("ENVIRONMENT", "Production")
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("METRICS_TOKEN", "m" * 40)
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("PORT", "10000")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setenv("DB_POOL_SIZE", "20")
    settings = load_settings()
    assert settings.db.url.url == "postgresql+asyncpg://u:p@host.example:6543/x"
    assert settings.db.url.connect_args == {"ssl": "require"}
    assert settings.redis.redis_url == "rediss://:pw@cache.example:6380/2"
    assert settings.app.environment == "production"
    assert settings.app.log_level == "DEBUG"
    assert settings.web.port == 10000
    assert settings.web.web_concurrency == 4
    assert settings.db.db_pool_size == 20


def test_empty_values_mean_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", random_key())
    monkeypatch.setenv("WEB_CONCURRENCY", "")
    monkeypatch.setenv("PORT", "")
    settings = load_settings()
    assert settings.web.web_concurrency is None
    assert settings.web.port == 8000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "PORT: Input should be a valid integer"),
        ("PORT", "70000", "PORT: Input should be less than or equal to 65535"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY: Input should be greater than or equal to 1"),
        ("DB_POOL_SIZE", "-1", "DB_POOL_SIZE: Input should be greater than or equal to 1"),
        ("DB_POOL_TIMEOUT", "0", "DB_POOL_TIMEOUT: Input should be greater than 0"),
        (
            "ENVIRONMENT",
            "staging",
            "ENVIRONMENT: Input should be 'development', 'test' or 'production'",
        ),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: Input should be 'DEBUG'"),
        ("DATABASE_URL", "mysql://u:p@h/d", "DATABASE_URL must start with postgres://"),
        ("REDIS_URL", "http://redis:6379", "REDIS_URL must start with redis:// or rediss://"),
        ("REDIS_URL", "redis://redis:6379/zero", "REDIS_URL has a database 'zero'"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith("invalid environment: ")
    assert message in text
    assert "\n" not in text


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:hunter2@db:xx/app")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_all_bad_variables_are_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "x")
    monkeypatch.setenv("DB_POOL_SIZE", "x")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "PORT" in str(info.value)
    assert "DB_POOL_SIZE" in str(info.value)


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import api.main"],
        ["-c", "import worker.app"],
        ["-m", "migrate"],
        ["-m", "gunicorn", "-c", "api/gunicorn.conf.py", "api.main:app"],
    ],
    ids=["api", "worker", "migrate", "gunicorn"],
)
def test_entry_points_fail_with_one_line(command: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://nope", "PYTHONPATH": "."}
    done = subprocess.run(
        [sys.executable, *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "configuration error: invalid environment: DATABASE_URL must start with "
        "postgres://, postgresql:// or postgresql+asyncpg:// (got mysql)"
    ]


STRONG_KEY = "k" * 48
STRONG_METRICS_TOKEN = "m" * 48


def production(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    values = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": STRONG_KEY,
        "METRICS_TOKEN": STRONG_METRICS_TOKEN,
        "DATABASE_URL": "postgres://app:Xq9-long-db-password@db:5432/app",
        **env,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, CORS_ORIGINS="https://app.example.com")
    assert load_settings().app.environment == "production"


PRODUCTION_PLACEHOLDER_KEY = (
    "SECRET_KEY is a placeholder; generate a random one "
    "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": "changethis"}, PRODUCTION_PLACEHOLDER_KEY),
        ({"SECRET_KEY": "changethis-development-only-secret-key"}, "SECRET_KEY is a placeholder"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is a placeholder"),  # empty means unset: the default
        ({"SECRET_KEY": "short-but-not-a-placeholder"}, "SECRET_KEY is shorter than 32 bytes"),
        (
            {"DATABASE_URL": "postgres://app:app@db:5432/app"},
            "DATABASE_URL has a missing or placeholder password",
        ),
        (
            {"DATABASE_URL": "postgres://app@db:5432/app"},
            "DATABASE_URL has a missing or placeholder password",
        ),
        ({"CORS_ORIGINS": "https://a.example.com, *"}, "CORS_ORIGINS allows '*'"),
        ({"METRICS_TOKEN": "changethis"}, "METRICS_TOKEN is a placeholder; generate a random"),
        ({"METRICS_TOKEN": "m" * 31}, "METRICS_TOKEN is shorter than 32 bytes"),
    ],
)
def test_production_guard(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    production(monkeypatch, **env)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("refusing to start in production: ")
    assert message in str(info.value)


def test_missing_secret_key_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(SettingsError, match="SECRET_KEY is a placeholder"):
        load_settings()


def test_production_lists_every_problem_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, DATABASE_URL="postgres://app:app@db/app", CORS_ORIGINS="*")
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == (
        f"refusing to start in production: {PRODUCTION_PLACEHOLDER_KEY}; "
        "DATABASE_URL has a missing or placeholder password; "
        "CORS_ORIGINS allows '*'; list the allowed origins"
    )


def test_other_placeholders_are_fine_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", random_key())
    monkeypatch.setenv("DATABASE_URL", "postgres://app:app@db:5432/app")
    monkeypatch.setenv("CORS_ORIGINS", "*")
    assert load_settings().http.cors_origin_list == ["*"]


# The one line a stack with the published key stops with outside ENVIRONMENT=test.
PLACEHOLDER_KEY_FIX = (
    "SECRET_KEY is a published placeholder; put a random one in .env "
    "(make env writes one into a new .env; "
    "or: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
)


@pytest.mark.parametrize("environment", ["development", None])
@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "changethis", "", None], ids=repr)
def test_placeholder_key_is_refused_in_development(
    monkeypatch: pytest.MonkeyPatch, environment: str | None, key: str | None
) -> None:
    """.env.example's key, another placeholder, an empty or an unset SECRET_KEY
    (both mean the default: the placeholder), with ENVIRONMENT set or not."""
    if environment is not None:
        monkeypatch.setenv("ENVIRONMENT", environment)
    if key is not None:
        monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == PLACEHOLDER_KEY_FIX


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, None], ids=["placeholder", "unset"])
def test_placeholder_key_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    production(monkeypatch)
    if key is None:
        monkeypatch.delenv("SECRET_KEY")
    else:
        monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == f"refusing to start in production: {PRODUCTION_PLACEHOLDER_KEY}"


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, None], ids=["placeholder", "unset"])
def test_placeholder_key_is_accepted_in_test(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    if key is not None:
        monkeypatch.setenv("SECRET_KEY", key)
    assert load_settings().app.secret_key == DEV_SECRET_KEY


def test_random_key_is_accepted_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    key = random_key()
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("SECRET_KEY", key)
    settings = load_settings()
    assert settings.app.environment == "development"
    assert settings.app.secret_key == key


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import api.main"],
        ["-c", "import worker.app"],
        ["-m", "migrate"],
        ["-m", "gunicorn", "-c", "api/gunicorn.conf.py", "api.main:app"],
    ],
    ids=["api", "worker", "migrate", "gunicorn"],
)
def test_entry_points_refuse_the_placeholder_key_with_one_line(command: list[str]) -> None:
    """No SECRET_KEY and no ENVIRONMENT: what `docker compose up` without a .env runs with."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    done = subprocess.run(
        [sys.executable, *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"configuration error: {PLACEHOLDER_KEY_FIX}"]


@pytest.mark.parametrize(
    "command", [["-c", "import api.main"], ["-c", "import worker.app"]], ids=["api", "worker"]
)
def test_api_and_worker_refuse_to_start_in_production_with_placeholders(command: list[str]) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ".",
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgres://app:app@db/app",
        "METRICS_TOKEN": STRONG_METRICS_TOKEN,
    }
    done = subprocess.run(
        [sys.executable, *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"configuration error: refusing to start in production: {PRODUCTION_PLACEHOLDER_KEY}; "
        "DATABASE_URL has a missing or placeholder password"
    ]


# What production says without METRICS_TOKEN: /metrics would be public on
# Render, where no proxy hides it.
METRICS_TOKEN_UNSET = (
    "METRICS_TOKEN is unset, so /metrics would be public; set one "
    "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
)


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_production_requires_a_metrics_token(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    production(monkeypatch)
    if value is None:
        monkeypatch.delenv("METRICS_TOKEN")
    else:
        monkeypatch.setenv("METRICS_TOKEN", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == f"refusing to start in production: {METRICS_TOKEN_UNSET}"


def test_production_accepts_a_32_byte_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, METRICS_TOKEN="m" * 32)
    assert load_settings().app.metrics_token == "m" * 32


@pytest.mark.parametrize("environment", ["development", "test"])
def test_metrics_token_is_optional_outside_production(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    """Unset, /metrics stays open: a laptop, the test stack."""
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", random_key())
    assert load_settings().app.metrics_token is None
    monkeypatch.setenv("METRICS_TOKEN", "short")  # any length will do there
    assert load_settings().app.metrics_token == "short"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("has space-in-it", "METRICS_TOKEN must be printable ASCII without spaces"),
        ("caf\u00e9-token", "METRICS_TOKEN must be printable ASCII without spaces"),
        ("tab\tinside", "METRICS_TOKEN must be printable ASCII without spaces"),
        ("x" * 1025, "METRICS_TOKEN: String should have at most 1024 characters"),
    ],
    ids=["space", "non-ascii", "tab", "too-long"],
)
def test_bad_metrics_tokens_are_named_not_echoed(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    """A token that no Authorization header could carry as configured, or an
    oversized one, stops the process; the value itself is never printed."""
    monkeypatch.setenv("SECRET_KEY", random_key())
    monkeypatch.setenv("METRICS_TOKEN", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)
    assert value not in str(info.value)
    assert "x" * 20 not in str(info.value)


def test_a_metrics_token_of_1024_characters_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", random_key())
    monkeypatch.setenv("METRICS_TOKEN", "x" * 1024)
    assert load_settings().app.metrics_token == "x" * 1024
