"""What core.settings.load_settings refuses, and the one line that says so:
values that do not parse (named, secrets never echoed), published
placeholder secrets, and what production must not run with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError

if TYPE_CHECKING:
    from core.settings import Settings

# The default when SECRET_KEY is unset, and .env.example's value: published,
# so refused everywhere but ENVIRONMENT=test (`make env` writes a random one).
DEV_SECRET_KEY = "changethis-development-only-secret-key"  # noqa: S105 (a known placeholder)

# Values shipped in .env.example and other well-known defaults. As SECRET_KEY
# (unset means DEV_SECRET_KEY) they are refused everywhere but in tests; as
# database passwords they are fine on a laptop, never in production.
PLACEHOLDER_SECRETS = frozenset(
    {
        DEV_SECRET_KEY,
        "changethis",
        "change-me",
        "changeme",
        "secret",
        "app",
        "app_rw",
        "postgres",
        "password",
        "",
    }
)
MIN_SECRET_KEY_BYTES = 32
RANDOM_KEY_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
# The one line a development stack with a placeholder SECRET_KEY stops with.
PLACEHOLDER_SECRET_KEY_FIX = (
    "SECRET_KEY is a published placeholder; put a random one in .env "
    f"(make env writes one into a new .env; or: {RANDOM_KEY_COMMAND})"
)


def _header_safe(value: str) -> str:
    # It travels in an Authorization header: visible ASCII only, or no client
    # could send it as it is configured.
    if not all("!" <= c <= "~" for c in value):
        raise ValueError("must be printable ASCII without spaces (a bearer token)")
    return value


# A secret a client sends as a bearer token (METRICS_TOKEN): a header value,
# so bounded; production also wants MIN_SECRET_KEY_BYTES of it.
BearerSecret = Annotated[str, Field(max_length=1024), AfterValidator(_header_safe)]


# Values of these variables may hold credentials and are never echoed back.
_SECRET_FIELDS = {
    "secret_key",
    "sentry_dsn",
    "database_url",
    "database_direct_url",
    "database_owner_url",
    "redis_url",
    "first_superuser_password",
    "metrics_token",
}


def describe(error: ValidationError) -> str:
    """One settings class's validation errors, each naming its variable."""
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "value_error":
            # A model-level check names its variables in the message itself.
            problems.append(f"{field.upper()} {message}" if item["loc"] else message)
            continue
        shown = "" if field in _SECRET_FIELDS else f" (got {item.get('input')!r})"
        problems.append(f"{field.upper()}: {message}{shown}")
    return "; ".join(problems)


def refusal(settings: Settings) -> str | None:
    """Why a process must not start with these settings, in one line; None
    when it may."""
    if settings.app.environment == "production":
        problems = production_problems(settings)
        if problems:
            return "refusing to start in production: " + "; ".join(problems)
    elif settings.app.environment != "test" and settings.app.secret_key in PLACEHOLDER_SECRETS:
        # Anyone can sign tokens with a published key, on a laptop too.
        return PLACEHOLDER_SECRET_KEY_FIX
    return None


def production_problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe for production, one phrase each."""
    problems = []
    key = settings.app.secret_key
    if key in PLACEHOLDER_SECRETS:
        problems.append(
            f"SECRET_KEY is a placeholder; generate a random one ({RANDOM_KEY_COMMAND})"
        )
    elif len(key.encode()) < MIN_SECRET_KEY_BYTES:
        problems.append(f"SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes")
    if urlsplit(settings.db.database_url).password in PLACEHOLDER_SECRETS | {None}:
        problems.append("DATABASE_URL has a missing or placeholder password")
    for name, url in (
        ("DATABASE_DIRECT_URL", settings.db.database_direct_url),
        ("DATABASE_OWNER_URL", settings.db.database_owner_url),
    ):
        if url is not None and urlsplit(url).password in PLACEHOLDER_SECRETS | {None}:
            problems.append(f"{name} has a missing or placeholder password")
    # No password is fine where the network keeps Redis private (Render's
    # Key Value); a published one is not.
    if urlsplit(settings.redis.redis_url).password in PLACEHOLDER_SECRETS - {""}:
        problems.append("REDIS_URL has a placeholder password")
    if "*" in settings.http.cors_origin_list:
        problems.append("CORS_ORIGINS allows '*'; list the allowed origins")
    problems += _metrics_token_problems(settings.app.metrics_token)
    return problems


def _metrics_token_problems(token: str | None) -> list[str]:
    # Render has no proxy in front of the api to hide /metrics (Caddy does
    # on a VM): the token is what keeps it from the internet.
    if token is None:
        return [
            f"METRICS_TOKEN is unset, so /metrics would be public; set one ({RANDOM_KEY_COMMAND})"
        ]
    if token in PLACEHOLDER_SECRETS:
        return [f"METRICS_TOKEN is a placeholder; generate a random one ({RANDOM_KEY_COMMAND})"]
    if len(token.encode()) < MIN_SECRET_KEY_BYTES:
        return [f"METRICS_TOKEN is shorter than {MIN_SECRET_KEY_BYTES} bytes"]
    return []
