"""One logging configuration for every process: gunicorn, uvicorn, Celery and
our own code all log through the root logger's single stdout handler.

LOG_FORMAT=json (the production default) writes one JSON object per line;
text (the development default) writes readable lines. Every record carries the
request id and the job id of the context it was logged in (see
:data:`request_id` and :data:`job_id`), so an API request and the job it
enqueued can be followed across processes; with tracing on (core.tracing),
also the ids of the trace and span it was logged in.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The id of the request being served, or of the request that enqueued the job
# being run; the job being run.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
# Set by core.tracing once this process exports traces: the current trace
# and span ids, or None outside a span. None while tracing is off.
trace_ids: Callable[[], tuple[str, str] | None] | None = None

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s%(context)s: %(message)s"

# Loggers that libraries give handlers of their own; they propagate to the
# root instead, so that every line has one format.
_LIBRARY_LOGGERS = (
    "gunicorn.error",
    "gunicorn.access",
    "uvicorn",
    "uvicorn.error",
    "celery",
)
# Attributes every LogRecord has; anything else was passed with ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "context",
    "request_id",
    "job_id",
    "trace_id",
    "span_id",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``job_id``, ``trace_id`` and ``span_id`` (with
    tracing on) and a ready-made ``context`` suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = getattr(record, "request_id", None) or request_id.get()
        jid = getattr(record, "job_id", None) or job_id.get()
        record.request_id = rid
        record.job_id = jid
        ids = trace_ids() if trace_ids is not None else None
        record.trace_id, record.span_id = ids or (None, None)
        parts = [f"request_id={rid}"] if rid else []
        if jid:
            parts.append(f"job_id={jid}")
        if ids:
            parts.append(f"trace_id={ids[0]}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, process,
    request and job ids when known, trace and span ids with tracing on,
    fields given with ``extra=``, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in ("request_id", "job_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str, ensure_ascii=False)


def _handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler._appstack = True  # type: ignore[attr-defined]
    return handler


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stdout at ``level`` in ``fmt`` (json or text); idempotent.

    Replaces only its own handler on the root logger, so that handlers added
    by others (pytest's log capture) stay.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in [h for h in root.handlers if getattr(h, "_appstack", False)]:
        root.removeHandler(handler)
    root.addHandler(_handler(fmt))
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The api's RequestContext middleware logs every request once, with its
    # request id; uvicorn's own access line would repeat it. (uvicorn logs
    # access whenever this logger has a handler, up the hierarchy too.)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # Loading the migration scripts (readiness) announces every plugin.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    # An uncaught exception of this process becomes one record too.
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    logging.getLogger("appstack").critical("uncaught exception", exc_info=(kind, value, tb))
