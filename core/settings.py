"""Typed settings read from the environment, one class per concern.

Every service (API, worker, scheduler, migrations) calls :func:`get_settings`.
A malformed value stops the process at start-up with one line naming the
variable (see :func:`load_settings_or_exit`), never with a driver traceback.
URLs are checked in core.urls; the error lines, placeholder secrets and
production checks are in core.settings_checks (names re-exported here).
"""

from __future__ import annotations

import ipaddress
import sys
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.settings_base import SettingsGroup, secrets_dir
from core.settings_checks import DEV_SECRET_KEY, BearerSecret, describe, refusal

# A group of Settings, importable from here like the others.
from core.settings_jobs import JobSettings as JobSettings
from core.settings_ratelimit import RateLimitSettings as RateLimitSettings
from core.urls import DatabaseURL, check_redis_url, normalize_database_url

Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "text"]


class SettingsError(Exception):
    """Raised when an environment variable holds a value the stack cannot use."""


class AppSettings(SettingsGroup):
    """Process-wide settings."""

    environment: Environment = "development"
    secret_key: str = Field(default=DEV_SECRET_KEY)
    log_level: LogLevel = "INFO"
    # json: one JSON object per line; text: readable lines. Unset: json in
    # production, text elsewhere.
    log_format: LogFormat | None = None
    # Errors (and, at the given rate, traces) go to Sentry when set.
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # The bearer token GET /metrics requires when set; unset, /metrics is
    # open (development, tests). Production refuses to start without one.
    metrics_token: BearerSecret | None = None

    @field_validator("environment", "log_level", "log_format", mode="before")
    @classmethod
    def _normalise_case(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.upper() if info.field_name == "log_level" else value.lower()

    @property
    def effective_log_format(self) -> LogFormat:
        """LOG_FORMAT, or its default for the environment."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "text"


class AuthSettings(SettingsGroup):
    """Tokens, throttling of logins and registrations, the first superuser."""

    # Access tokens are short-lived: a stolen one is useful for minutes. The
    # refresh token (rotated on every use) keeps a client logged in.
    access_token_expire_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_expire_days: int = Field(default=14, ge=1, le=90)
    # Seconds each api process trusts its last check that a token's auth
    # session is live and its account active (api/principals.py); 0 checks the
    # database on every request. Revocations reach other processes within it.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Password checks (login, PATCH /users/me) allowed to fail within the
    # window, per email from one client address and per client address; the
    # next attempt answers 429. Failures for one email from every address
    # together only slow that email's logins down (by up to
    # LOGIN_MAX_DELAY_SECONDS), never refuse them: no one can lock a victim out.
    login_max_failures: int = Field(default=10, ge=1, le=10_000)
    login_max_failures_per_ip: int = Field(default=30, ge=1, le=100_000)
    login_window_seconds: int = Field(default=300, ge=1, le=86_400)
    login_max_delay_seconds: float = Field(default=3.0, ge=0, le=30)
    # Logins (auth sessions) a user keeps at once; a new one ends the oldest.
    max_sessions_per_user: int = Field(default=10, ge=1, le=1000)
    # Registrations accepted per client address within the window (429 beyond).
    register_max_per_ip: int = Field(default=20, ge=1, le=100_000)
    register_window_seconds: int = Field(default=3600, ge=1, le=86_400 * 7)
    first_superuser_email: str | None = None
    first_superuser_password: str | None = Field(default=None, min_length=8, max_length=128)


class HTTPSettings(SettingsGroup):
    """Request limits and CORS."""

    # Comma-separated origins allowed to call the API from a browser.
    cors_origins: str = ""
    max_request_bytes: int = Field(default=1024 * 1024, ge=1)

    @property
    def cors_origin_list(self) -> list[str]:
        """CORS_ORIGINS split on commas, without blanks or trailing slashes."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]


class DatabaseSettings(SettingsGroup):
    """Postgres connection and pool settings."""

    database_url: str = "postgresql://app:app@localhost:5432/app"
    # Connections each process keeps open. Overflow connections are closed as
    # soon as they are returned, so under steady load above the pool size they
    # are opened and closed again and again; a pool that covers the load and
    # no overflow is faster than a small pool with a large overflow.
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=0, ge=0, le=1000)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    # Longest one statement may run before Postgres cancels it (the request
    # answers 503); jobs: JOB_STATEMENT_TIMEOUT_SECONDS, migrations: none.
    db_statement_timeout_seconds: float = Field(default=30.0, ge=0.001, le=3600)
    # "transaction" when DATABASE_URL points at a transaction-mode pooler
    # (PgBouncer, Supabase's pooler): no client-side pool, no prepared
    # statement cache, uniquely named prepared statements.
    db_pooler: Literal["none", "transaction"] = "none"
    # A direct (not pooled) URL for migrations, which hold a session-level
    # advisory lock that a transaction pooler cannot keep. Unset: DATABASE_URL.
    database_direct_url: str | None = None
    # The role that owns the tables, for migrations only (python -m migrate,
    # alembic): never given to the api, worker or scheduler, which connect as
    # DATABASE_URL's role; migrations grant that role what it needs
    # (core/db_roles.py). Direct, never a pooler. Unset: the direct URL.
    database_owner_url: str | None = None
    # The server's max_connections, for the start-up connection budget.
    # Unset: read with SHOW max_connections.
    db_max_connections: int | None = Field(default=None, ge=1)

    @field_validator("database_url", "database_direct_url", "database_owner_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            normalize_database_url(value)
        return value

    @field_validator("db_pooler", mode="before")
    @classmethod
    def _normalise_pooler(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def url(self) -> DatabaseURL:
        """The normalised asyncpg URL and its connect arguments."""
        return normalize_database_url(self.database_url)

    @property
    def direct_url(self) -> DatabaseURL:
        """The URL for migrations and other session-level work."""
        return normalize_database_url(self.database_direct_url or self.database_url)

    def as_owner(self) -> DatabaseSettings:
        """These settings with DATABASE_OWNER_URL as the direct URL: what
        ``create_engine(..., direct=True)`` connects migrations with."""
        if self.database_owner_url is None:
            return self
        return self.model_copy(update={"database_direct_url": self.database_owner_url})

    @property
    def pooled(self) -> bool:
        """True when a transaction-mode pooler sits in front of Postgres."""
        return self.db_pooler == "transaction"


class RedisSettings(SettingsGroup):
    """Redis, used as the Celery broker and by the API."""

    redis_url: str = "redis://localhost:6379/0"

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_redis_url(value)


class WebSettings(SettingsGroup):
    """How gunicorn serves the API."""

    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int | None = Field(default=None, ge=1, le=256)
    # api containers the fleet may scale to, for the connection budget.
    api_replicas: int = Field(default=1, ge=1, le=1000)
    # Proxies whose X-Forwarded-For / -Proto are believed: addresses and
    # networks, comma-separated, or * for "the connecting peer, whatever its
    # address" (only where a proxy is the only way in). The client is the
    # right-most forwarded address that is not a listed proxy (api/proxy.py).
    forwarded_allow_ips: str = "127.0.0.1"
    graceful_timeout: int = Field(default=20, ge=1)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for item in value.split(","):
            item = item.strip()
            if item and item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"has {item!r}, which is neither an address, a network nor *"
                    ) from None
        return value


class Settings(BaseModel):
    """All settings, grouped by concern."""

    app: AppSettings
    auth: AuthSettings
    http: HTTPSettings
    db: DatabaseSettings
    redis: RedisSettings
    web: WebSettings
    jobs: JobSettings
    ratelimit: RateLimitSettings


def load_settings() -> Settings:
    """Read every settings class from the environment.

    Raises :class:`SettingsError` with one line naming each bad variable.
    """
    try:
        secrets_dir()
    except ValueError as exc:
        raise SettingsError(f"invalid environment: {exc}") from None
    groups: dict[str, Any] = {}
    errors: list[str] = []
    for name, cls in (
        ("app", AppSettings),
        ("auth", AuthSettings),
        ("http", HTTPSettings),
        ("db", DatabaseSettings),
        ("redis", RedisSettings),
        ("web", WebSettings),
        ("jobs", JobSettings),
        ("ratelimit", RateLimitSettings),
    ):
        try:
            groups[name] = cls()
        except ValidationError as exc:
            errors.append(describe(exc))
    if errors:
        raise SettingsError("invalid environment: " + "; ".join(errors))
    settings = Settings(**groups)
    problem = refusal(settings)
    if problem is not None:
        raise SettingsError(problem)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def load_settings_or_exit() -> Settings:
    """Like :func:`get_settings`, but print one line and exit 2 on a bad value.

    Entry points (gunicorn config, Celery app, migrations) call this so that a
    misconfigured deployment fails fast with a readable message.
    """
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
