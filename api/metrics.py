"""Prometheus metrics of the API: requests by route template and status, a
latency histogram and the requests in flight, served at ``GET /metrics``.

Under gunicorn every worker process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (set and emptied by api/gunicorn.conf.py before the
workers start), and a scrape adds them up, so the figures are the whole
server's whichever worker answers. Without that variable (tests, a single
process) the in-process registry is served.

With METRICS_TOKEN set (production requires it), a scrape must send
``Authorization: Bearer <METRICS_TOKEN>``: on Render no proxy hides the path.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from api.deps import SettingsDep
from core.errors import NotAuthenticated
from core.metrics import scrape_registry

router = APIRouter(tags=["operations"])

REQUESTS = Counter(
    "appstack_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "appstack_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "appstack_http_requests_in_flight",
    "Requests being served right now, all workers together.",
    multiprocess_mode="livesum",
)
READINESS = Gauge(
    "appstack_readiness_check",
    "1 when the last /health/ready passed this check (database, redis, "
    "migrations), 0 when it failed.",
    ["check"],
    multiprocess_mode="mostrecent",
)

_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def scraper(settings: SettingsDep, credentials: Credentials) -> None:
    """Let the request through when METRICS_TOKEN is unset or its bearer
    token is METRICS_TOKEN; :class:`NotAuthenticated` otherwise."""
    expected = settings.app.metrics_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    # Digests of equal length, compared in constant time: neither the
    # token's characters nor its length leak through the timing.
    if not hmac.compare_digest(_digest(given), _digest(expected)):
        raise NotAuthenticated("missing or invalid metrics token")


def _digest(token: str) -> bytes:
    # Header values arrive decoded as Latin-1; UTF-8 encodes any of them.
    return hashlib.sha256(token.encode()).digest()


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(scraper)])
async def metrics() -> Response:
    """Prometheus text format, for a bearer of METRICS_TOKEN when it is set.
    The VM stack's proxy does not serve it at all: scrape it from the
    internal network (api:8000)."""
    return Response(generate_latest(scrape_registry()), media_type=CONTENT_TYPE_LATEST)
