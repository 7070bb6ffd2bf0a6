"""Connection URLs as deployments give them (checked by core.settings): a
Postgres URL turned into what SQLAlchemy's asyncpg dialect accepts (used by
core.db), and a Redis URL checked before any client sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg"}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


class DatabaseURL(BaseModel):
    """A Postgres URL split into what SQLAlchemy's asyncpg dialect needs."""

    url: str
    connect_args: dict[str, Any]


def normalize_database_url(raw: str) -> DatabaseURL:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://``.

    Returns a ``postgresql+asyncpg://`` URL and the asyncpg connect arguments:
    libpq's ``sslmode=`` becomes asyncpg's ``ssl``, ``connect_timeout`` becomes
    ``timeout`` and ``application_name`` a server setting. Any other query
    parameter is refused, because asyncpg would fail on it later with a
    confusing ``TypeError``.
    """
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in _POSTGRES_SCHEMES:
        shown = parts.scheme or "no scheme"
        raise ValueError(
            f"must start with postgres://, postgresql:// or postgresql+asyncpg:// (got {shown})"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise ValueError("has no host (expected postgresql://user:password@host:5432/dbname)")
    database = parts.path.lstrip("/")
    if "/" in database:
        raise ValueError(f"has an invalid database name {database!r}")
    netloc = parts.netloc
    if port is None and parts.hostname:
        netloc = f"{netloc}:5432"
    url = parts._replace(scheme="postgresql+asyncpg", netloc=netloc, query="").geturl()
    return DatabaseURL(url=url, connect_args=_connect_args(parts.query))


def _connect_args(query: str) -> dict[str, Any]:
    """asyncpg's arguments for the URL's libpq query parameters."""
    connect_args: dict[str, Any] = {}
    for key, val in parse_qsl(query, keep_blank_values=True):
        if key in {"sslmode", "ssl"}:
            if val not in _SSL_MODES:
                allowed = ", ".join(sorted(_SSL_MODES))
                raise ValueError(f"has {key}={val!r}; use one of {allowed}")
            connect_args["ssl"] = val
        elif key == "connect_timeout":
            if not val.isdigit() or int(val) <= 0:
                raise ValueError(f"has connect_timeout={val!r}; use a positive number of seconds")
            connect_args["timeout"] = int(val)
        elif key == "application_name":
            connect_args.setdefault("server_settings", {})["application_name"] = val
        else:
            raise ValueError(
                f"has an unsupported query parameter {key!r} "
                "(supported: sslmode, ssl, connect_timeout, application_name)"
            )
    return connect_args


def check_redis_url(raw: str) -> str:
    """A ``redis://`` or ``rediss://`` URL with a host, a numeric port and
    database, stripped of surrounding blanks."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"redis", "rediss"}:
        raise ValueError("must start with redis:// or rediss://")
    if not parts.hostname:
        raise ValueError("has no host (expected redis://host:6379/0)")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number between 0 and 65535") from None
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"has a database {db!r} that is not a number")
    return raw.strip()
