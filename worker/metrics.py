"""The worker's Prometheus endpoint: the job metrics of core.jobs.metrics,
summed over the prefork children, on WORKER_METRICS_PORT (internal only)."""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

log = logging.getLogger(__name__)


def serve(port: int) -> None:
    """Start the endpoint in this (the main) process; a no-op for port 0 or
    outside multiprocess mode."""
    if not port or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)
    log.info("job metrics on :%d/metrics", port)


def process_exited(pid: int) -> None:
    """Forget a child's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
