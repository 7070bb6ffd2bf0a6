"""Per-request context: the request id, one access-log line, and metrics.

The outermost middleware, so that everything below it (including a 413 from
the body limit) runs with the request id set and is counted.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from core.logging import request_id

log = logging.getLogger("appstack.access")

HEADER = "X-Request-ID"
# An incoming id is kept only when it is short and plain (no spaces, quotes or
# control characters to smuggle into logs); otherwise a new one is made.
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
# Probes and scrapes would drown the access log; they are logged at DEBUG.
_QUIET_PREFIXES = ("/health/", "/metrics")


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's X-Request-ID when it is well formed."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _WELL_FORMED.fullmatch(candidate) else None
    return None


class RequestContext:
    """Sets :data:`core.logging.request_id`, echoes it as X-Request-ID, logs
    the request once it is answered, and records its metrics under the route
    template (``/api/v1/items/{item_id}``), never the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500  # if the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            count, latency = _meters(method, template, status)
            count.inc()
            latency.observe(elapsed)
            path = scope["path"]
            level = logging.DEBUG if path.startswith(_QUIET_PREFIXES) else logging.INFO
            if log.isEnabledFor(level):
                _log_access(scope, level, method, path, template, status, elapsed)
            request_id.reset(token)


@functools.lru_cache(maxsize=1024)
def _meters(method: str, template: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one route and status,
    looked up once: templates and statuses are few (an unmatched path is
    "unmatched"), and a labels() lookup per request is a measurable cost."""
    return (
        metrics.REQUESTS.labels(method, template, str(status)),
        metrics.LATENCY.labels(method, template),
    )


def _log_access(
    scope: Scope, level: int, method: str, path: str, template: str, status: int, elapsed: float
) -> None:
    """The access line. The record is made here, not by ``log.log``: that
    would look up the caller's file and line on every request, which no
    format shows."""
    client = scope.get("client")
    extra = {
        "http_method": method,
        "path": path,
        "route": template,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "client": client[0] if client else None,
    }
    args = (method, path, status, elapsed * 1000)
    message = "%s %s %d %.1fms"
    record = log.makeRecord(log.name, level, __file__, 0, message, args, None, extra=extra)
    log.handle(record)
