"""The Celery application: ``celery -A worker.app worker`` / ``beat``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init

from core.budget import log_budget
from core.cpu import effective_cpus, gunicorn_workers
from core.logging import configure_logging
from core.queue import celery_config
from core.settings import load_settings_or_exit

settings = load_settings_or_exit()
configure_logging(settings.app.log_level)

app = Celery("worker", include=["worker.tasks"])
app.conf.update(celery_config(settings))


@worker_init.connect
def _log_connection_budget(sender: Any = None, **_: Any) -> None:
    """Log the stack's worst-case database connections (the api's worker count
    is estimated from this machine's CPUs unless WEB_CONCURRENCY is set)."""
    concurrency = getattr(sender, "concurrency", None) or settings.jobs.worker_concurrency
    api = gunicorn_workers(settings.web.web_concurrency, effective_cpus())
    log_budget(settings, api_processes=api, worker_processes=int(concurrency))


# Importing the runner connects its per-process signal handlers.
import worker.runner  # noqa: E402, F401
