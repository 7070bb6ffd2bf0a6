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

import asyncio
import json
import logging
import os
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

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


# Lines below WARNING logged on an event loop wait at most this long to be
# written, in one write with the others of that time: a write per request
# line (a system call, and the container runtime's log driver woken for
# each) cost a busy API more than formatting the line. WARNING and above,
# and lines logged outside an event loop, are written at once, with
# everything queued before them.
FLUSH_SECONDS = 0.05
_MAX_BUFFERED = 256 * 1024  # characters; written at once beyond


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose INFO and DEBUG lines logged on an event loop go
    out in batches, at most :data:`FLUSH_SECONDS` late, written by a
    callback on that loop (no thread: processes fork after logging).
    Flushed before a fork (nothing is written twice), at exit, on close."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._buffer: list[str] = []
        self._size = 0
        self._since = 0.0  # when the oldest queued line was queued
        self._flush_on: asyncio.AbstractEventLoop | None = None
        _BATCHING.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the line (``handle`` holds the lock), or write the queue."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        now = time.monotonic()
        if not self._buffer:
            self._since = now
        self._buffer.append(line)
        self._size += len(line)
        if (
            record.levelno >= logging.WARNING
            or self._size >= _MAX_BUFFERED
            or now - self._since >= FLUSH_SECONDS
            or not self._flush_later()
        ):
            self._write()

    def _flush_later(self) -> bool:
        """Whether a flush is due on this thread's running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._flush_on is not loop:  # none yet, or on a loop since gone
            self._flush_on = loop
            loop.call_later(FLUSH_SECONDS, self._flush_from, loop)
        return True

    def _flush_from(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in __init__
            if self._flush_on is loop:
                self._flush_on = None
            self._write()

    def _write(self) -> None:
        if not self._buffer:
            return
        text, self._buffer, self._size = "".join(self._buffer), [], 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed stdout, say: told as logging.Handler tells it
            if logging.raiseExceptions:
                sys.stderr.write("--- Logging error ---\n")
                traceback.print_exc(file=sys.stderr)

    def flush(self) -> None:
        """Write the queued lines."""
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        """Write the queued lines, then close."""
        self.flush()
        super().close()

    def _forked(self) -> None:
        # What was queued the parent wrote; the parent's loop is not ours.
        self._buffer, self._size, self._flush_on = [], 0, None


_BATCHING: weakref.WeakSet[BatchingStreamHandler] = weakref.WeakSet()


def _before_fork() -> None:
    for handler in list(_BATCHING):
        handler.flush()


def _after_fork_in_child() -> None:
    for handler in list(_BATCHING):
        handler._forked()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _handler(fmt: str, batch: bool) -> logging.Handler:
    handler: logging.Handler = (
        BatchingStreamHandler(sys.stdout) if batch else logging.StreamHandler(sys.stdout)
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler._appstack = True  # type: ignore[attr-defined]
    return handler


def configure_logging(level: str, fmt: str = "text", *, batch: bool = False) -> None:
    """Log to stdout at ``level`` in ``fmt`` (json or text); idempotent.
    ``batch``: lines below WARNING logged on an event loop are written in
    batches (:class:`BatchingStreamHandler`), for the API's processes, which
    exit through the interpreter's exit (and its flush). Not for Celery's
    pool processes: they end with ``os._exit``, which would drop the queue.

    Replaces only its own handler on the root logger, so that handlers added
    by others (pytest's log capture) stay.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in [h for h in root.handlers if getattr(h, "_appstack", False)]:
        root.removeHandler(handler)
        handler.close()  # writes what it queued
    root.addHandler(_handler(fmt, batch))
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
