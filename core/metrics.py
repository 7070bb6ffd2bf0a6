"""Prometheus multiprocess mode, shared by the api (gunicorn) and the worker
(Celery prefork): several processes record metrics into files in one
directory, and a scrape adds them up."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def start_multiprocess_metrics(default_dir: str) -> str:
    """Choose PROMETHEUS_MULTIPROC_DIR (the environment's, else ``default_dir``),
    empty it, and make prometheus_client record there; returns the directory.

    Call it once per server start, in the parent, before the recording
    processes fork (they inherit both). Stale files of an earlier start would
    count twice. prometheus_client picks its value store when first imported,
    and something may have imported it already (Celery's command line loads
    Flower's plugin, which does), so the store is picked again here.
    """
    path = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", default_dir)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def scrape_registry() -> CollectorRegistry:
    """What a scrape serves: in multiprocess mode, a registry that adds up
    every process's files when collected; otherwise this process's own."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def process_exited(pid: int) -> None:
    """Forget a dead recording process's live gauges (a no-op outside
    multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
