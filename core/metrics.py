"""Prometheus multiprocess mode, shared by the api (gunicorn) and the worker
(Celery prefork): several processes record metrics into files in one
directory, and a scrape adds them up."""

from __future__ import annotations

import os
import shutil


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
