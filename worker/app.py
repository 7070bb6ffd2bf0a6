"""The Celery application: ``celery -A worker.app worker`` / ``beat``."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from core import tracing
from core.budget import log_budget
from core.cpu import effective_cpus, gunicorn_workers
from core.logging import configure_logging
from core.metrics import process_exited
from core.observability import init_sentry
from core.queue import celery_config
from core.settings import load_settings_or_exit
from worker import metrics

settings = load_settings_or_exit()
configure_logging(settings.app.log_level, settings.app.effective_log_format)
# Celery's two lines per message ("received", "succeeded in ...") only say
# that a claim was made: the runner logs each job's outcome with its id and
# request id. At hundreds of jobs a second they cost the worker CPU.
for _name in ("celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).setLevel(max(logging.WARNING, logging.getLogger().level))
init_sentry(settings.app, component="worker")

app = Celery("worker", include=["worker.tasks"])
app.conf.update(celery_config(settings))
# Two schedulers at once send each periodic task once: only the holder of a
# lease in Redis sends (worker/leader.py).
app.conf.beat_scheduler = "worker.leader:LeaderScheduler"
app.steps["consumer"].add(metrics.Consuming)


@setup_logging.connect
def _keep_our_logging(**_: Any) -> None:
    """Connected, so Celery leaves logging to core.logging (set up above)."""


@worker_init.connect
def _on_worker_start(sender: Any = None, **_: Any) -> None:
    """In the main process, before the children fork: serve /health and the
    job metrics, and log the stack's worst-case database connections (the
    api's worker count is estimated from this machine's CPUs unless
    WEB_CONCURRENCY is set)."""
    metrics.serve(settings.jobs.worker_metrics_port, settings.redis.redis_url)
    concurrency = getattr(sender, "concurrency", None) or settings.jobs.worker_concurrency
    api = gunicorn_workers(settings.web.web_concurrency, effective_cpus())
    log_budget(settings, api_processes=api, worker_processes=int(concurrency))


@worker_process_init.connect
def _start_tracing(**_: Any) -> None:
    """Tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) starts in each child,
    after the fork (the span exporter's thread would not survive it), and
    before the runner's handler below creates the child's engine, which is
    traced from then on: receivers run in the order they were connected."""
    tracing.setup("worker", celery=True)


@worker_process_shutdown.connect
def _on_child_exit(pid: int | None = None, **_: Any) -> None:
    process_exited(pid or os.getpid())
    # A child ends without running atexit: its last spans go out now.
    tracing.shutdown()


# Importing the runner connects its per-process signal handlers (after the
# tracing one above).
import worker.runner  # noqa: E402, F401
