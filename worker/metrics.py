"""The worker's internal HTTP endpoint on WORKER_METRICS_PORT, served by the
main process:

- ``/health``: 200 while the worker consumes from the broker, 503 otherwise
  (the broker connection was lost and Celery is reconnecting, or the worker
  is starting or shutting down). The compose healthcheck asks it: it costs a
  bare HTTP request, where ``celery inspect ping`` costs about a second of CPU.
- ``/metrics``: the job metrics of core.jobs.metrics, summed over the prefork
  children, plus ``appstack_worker_consuming`` and ``appstack_scheduler_leader``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import bootsteps
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from core.metrics import scrape_registry
from worker.leader import LEASE_KEY

log = logging.getLogger(__name__)

# Set between the consumer's start and its stop. Celery stops the consumer
# when the broker connection is lost and starts it again once reconnected.
consuming = threading.Event()


class Consuming(bootsteps.StartStopStep):
    """A consumer step that records whether the worker consumes (added to
    the consumer blueprint in worker/app.py)."""

    # After the task consumer started, before the event loop (always last).
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        consuming.set()
        log.info("consuming from the broker")

    def stop(self, parent: Any) -> None:
        if consuming.is_set():  # Celery logs why (connection lost, shutdown)
            log.info("stopped consuming from the broker")
        consuming.clear()

    def shutdown(self, parent: Any) -> None:
        consuming.clear()


class _ConsumingCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "appstack_worker_consuming",
            "1 while the worker consumes from the broker",
            value=float(consuming.is_set()),
        )


class SchedulerCollector(Collector):
    """``appstack_scheduler_leader``: 1 while a scheduler holds the lease in
    Redis (worker/leader.py), 0 when none does; nothing when Redis does not
    answer (the worker's own alerts cover that). Read at scrape time: the
    scheduler serves no metrics of its own."""

    def __init__(self, redis_url: str, key: str = LEASE_KEY) -> None:
        self._redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._key = key

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            held = bool(self._redis.exists(self._key))
        except RedisError as exc:
            log.warning("scheduler lease: Redis did not answer (%s)", exc)
            return
        yield GaugeMetricFamily(
            "appstack_scheduler_leader",
            "1 while a scheduler holds the lease that lets it send periodic tasks",
            value=float(held),
        )


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def endpoint(registry: CollectorRegistry) -> WSGIApp:
    """The WSGI app behind the port: ``/health``, anything else is metrics."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            ok = consuming.is_set()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"consuming\n" if ok else b"not consuming from the broker\n"]
        body: Iterable[bytes] = metrics(environ, start_response)
        return body

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Every healthcheck would be a log line otherwise."""


def serve(port: int, redis_url: str | None = None) -> None:
    """Serve the endpoint from a daemon thread of this (the main) process;
    a no-op for port 0. With ``redis_url``, the metrics say whether a
    scheduler leads."""
    if not port:
        return
    registry = scrape_registry()
    registry.register(_ConsumingCollector())
    if redis_url:
        registry.register(SchedulerCollector(redis_url))
    server = make_server(
        "0.0.0.0",  # a container port, published nowhere
        port,
        endpoint(registry),
        server_class=_Server,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="worker-endpoint", daemon=True).start()
    log.info("worker health on :%d/health, job metrics on :%d/metrics", port, port)
