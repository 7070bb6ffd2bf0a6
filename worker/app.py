"""The Celery application: ``celery -A worker.app worker`` / ``beat``."""

from __future__ import annotations

from celery import Celery

from core.logging import configure_logging
from core.queue import celery_config
from core.settings import load_settings_or_exit

settings = load_settings_or_exit()
configure_logging(settings.app.log_level)

app = Celery("worker", include=["worker.tasks"])
app.conf.update(celery_config(settings))

# Importing the runner connects its per-process signal handlers.
import worker.runner  # noqa: E402, F401
