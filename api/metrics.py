"""Prometheus metrics of the API: requests by route template and status, a
latency histogram and the requests in flight, served at ``GET /metrics``.

Under gunicorn every worker process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (set and emptied by api/gunicorn.conf.py before the
workers start), and a scrape adds them up, so the figures are the whole
server's whichever worker answers. Without that variable (tests, a single
process) the in-process registry is served.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

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


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format. Not exposed to the internet by the production
    proxy: scrape it from the internal network."""
    return Response(generate_latest(scrape_registry()), media_type=CONTENT_TYPE_LATEST)
