"""gunicorn configuration: ``gunicorn -c api/gunicorn.conf.py api.main:app``.

Workers = WEB_CONCURRENCY when set, else 2 x effective CPUs + 1, where the
effective CPU count honours the container's CPU quota (see core.cpu).
"""

import logging
from typing import Any

# First: what the api's processes leave out of redis-py, uvicorn and FastAPI
# (see its docstring).
import core.lean_imports  # noqa: F401
from core import tracing
from core.budget import log_budget
from core.cpu import cgroup_memory_limit, effective_cpus, gunicorn_workers, upload_memory_warning
from core.metrics import process_exited, start_multiprocess_metrics
from core.settings import load_settings_or_exit

_settings = load_settings_or_exit()

# Every worker writes its metrics to files in this directory and /metrics
# adds them up (a tmpfs in production: /tmp).
start_multiprocess_metrics("/tmp/appstack-api-metrics")  # noqa: S108
_cpus = effective_cpus()

wsgi_app = "api.main:app"
bind = f"0.0.0.0:{_settings.web.port}"
# uvicorn workers without a Server header, and gunicorn's messages in the
# shared log format (api/serving.py).
worker_class = "api.serving.Worker"
logger_class = "api.serving.GunicornLogger"
workers = gunicorn_workers(_settings.web.web_concurrency, _cpus)
# Workers get this long to finish in-flight requests on SIGTERM; compose's
# stop_grace_period is longer.
graceful_timeout = _settings.web.graceful_timeout
timeout = 60
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = _settings.app.log_level.lower()
# X-Forwarded-* are read by the app from FORWARDED_ALLOW_IPS's proxies only
# (api/proxy.py); gunicorn and uvicorn leave them alone (api/serving.py).
# The heartbeat file gunicorn touches per worker: tmpfs, never a slow disk.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (a tmpfs, not a shared temp dir)
# No runtime control socket: nothing uses it, and the filesystem may be read-only.
control_socket_disable = True


def post_fork(server: object, worker: Any) -> None:
    """Tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) starts in each
    worker, after the fork: the span exporter's thread would not survive it.
    The app, imported next in the worker, is instrumented then."""
    tracing.setup("api")


def worker_exit(server: object, worker: Any) -> None:
    """Export the worker's last spans."""
    tracing.shutdown()


def child_exit(server: object, worker: Any) -> None:
    """Drop a dead worker's live gauges (requests in flight) from /metrics."""
    process_exited(worker.pid)


def on_starting(server: object) -> None:
    """Say how the worker count was chosen, and what it costs in database
    connections (before any worker is forked)."""
    source = "WEB_CONCURRENCY" if _settings.web.web_concurrency else f"{_cpus} effective CPUs"
    logging.getLogger("gunicorn.error").info("%d workers (%s)", workers, source)
    log_budget(_settings, api_processes=workers, worker_processes=_settings.jobs.worker_concurrency)
    warning = upload_memory_warning(
        processes=workers,
        slots=_settings.jobs.uploads_per_process,
        max_bytes=_settings.jobs.max_upload_bytes,
        limit=cgroup_memory_limit(),
    )
    if warning:
        logging.getLogger("gunicorn.error").warning(warning)
