"""Error reporting: Sentry, switched on by SENTRY_DSN for the api and the worker."""

from __future__ import annotations

import logging

from core.settings import AppSettings

log = logging.getLogger(__name__)


def init_sentry(settings: AppSettings, *, component: str) -> bool:
    """Start the Sentry client when SENTRY_DSN is set; return whether it runs.

    The SDK's integrations for FastAPI / Starlette, Celery, SQLAlchemy and
    logging switch themselves on when those libraries are installed: unhandled
    exceptions and ERROR log records become events, tagged with the component.
    The SDK's default sends no personal data (client addresses, cookies);
    request bodies are never read or sent (``max_request_body_size``).
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk  # only when used: a few MB in every process otherwise

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # Never read a request's body for an event: the SDK's default
        # ("medium") parses a form of up to 10 KB before the route runs, and
        # would spool an upload to /tmp ahead of the upload route's own reader.
        max_request_body_size="never",
    )
    sentry_sdk.set_tag("component", component)
    log.info("Sentry error reporting on (%s)", component)
    return True
