"""OpenTelemetry traces, opt-in: on when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; exported over OTLP/HTTP.

Each serving process calls :func:`setup` itself: the api in every gunicorn
worker after the fork (``post_fork`` in api/gunicorn.conf.py), the worker in
every Celery child (``worker_process_init``). Never before a fork: the span
processor's export thread does not survive one. Until then, and whenever
tracing is off, every function here does nothing and imports nothing of
OpenTelemetry, so a process without tracing pays nothing for it.

Traced: the HTTP request (FastAPI), its SQL (SQLAlchemy: the engine of each
api and worker process, :func:`trace_engine`), Redis calls, the Celery tasks a worker runs,
the publish of a job's message (:func:`publish_span`) and the run of a job
(:func:`job_span`). A job keeps the trace context of the request that created
it in its row (``jobs.trace_context``, from :func:`carrier`), as it keeps the
request id: its run joins that trace whichever message delivered it, a
relay's re-send included, and links to the message's own span.

The SDK reads the standard variables: OTEL_SERVICE_NAME (default
``appstack-api`` / ``appstack-worker``), OTEL_TRACES_SAMPLER and
OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES,
OTEL_BSP_* and the rest; OTEL_SDK_DISABLED=true turns tracing off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from core import logging as logging_context

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Attributes of the spans of a job (its publish and its run).
JOB_ID = "appstack.job.id"
JOB_KIND = "appstack.job.kind"
JOB_ATTEMPT = "appstack.job.attempt"
JOB_OUTCOME = "appstack.job.outcome"
# Requests never traced unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says
# otherwise: the healthchecks (every few seconds) and the metrics scrape.
DEFAULT_EXCLUDED_URLS = "/health/,/metrics"

_provider: TracerProvider | None = None
_pid: int | None = None


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint is set,
    and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint and endpoint.strip())


def active() -> bool:
    """Whether this process exports traces (:func:`setup` ran in it)."""
    return _provider is not None and _pid == os.getpid()


def setup(component: str, *, celery: bool = False) -> bool:
    """Start exporting this process's traces when :func:`enabled`; returns
    whether it does. ``component`` (api, worker) names the service unless
    OTEL_SERVICE_NAME does; ``celery`` traces the tasks this process runs.
    Call it after any fork, before the process creates its engine."""
    global _provider, _pid
    if active():
        return True
    if not enabled():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=_resource(component))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    if celery:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _provider, _pid = provider, os.getpid()
    logging_context.trace_ids = _ids_reader()
    log.info("OpenTelemetry tracing on (%s)", component)
    return True


def _resource(component: str) -> Any:
    """The service's resource: what OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES say, else ``appstack-<component>``."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({"appstack.component": component})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"appstack-{component}"}))
    return resource


def _ids_reader() -> Callable[[], tuple[str, str] | None]:
    """What core.logging calls for every record: the current trace and span
    ids in their W3C spelling, or None outside a span."""
    from opentelemetry.trace import get_current_span

    def ids() -> tuple[str, str] | None:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    return ids


def shutdown() -> None:
    """Export what is left and stop (a Celery child exits without atexit)."""
    global _provider
    if active() and _provider is not None:
        _provider.shutdown()
        logging_context.trace_ids = None
    _provider = None


def instrument_app(app: FastAPI) -> None:
    """Trace ``app``'s requests (a server span around every middleware)."""
    if not active():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    excluded = (
        None if os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") else DEFAULT_EXCLUDED_URLS
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=excluded,
        # No span per ASGI message: a request is one span and its children.
        exclude_spans=["receive", "send"],
    )


def trace_engine(engine: AsyncEngine) -> None:
    """Trace the statements of ``engine`` (its sync engine: SQLAlchemy's
    events fire there for the async one too)."""
    if not active():
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as version
    from opentelemetry.metrics import get_meter
    from opentelemetry.trace import get_tracer

    name = "opentelemetry.instrumentation.sqlalchemy"
    usage = get_meter(name, version).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    tracer = get_tracer(name, version, _provider)
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers (``traceparent``, ...), to
    keep with a job; None when tracing is off or no span is current."""
    if not active():
        return None
    from opentelemetry.propagate import inject

    headers: dict[str, str] = {}
    inject(headers)
    return headers or None


@contextmanager
def publish_span(job_id: UUID, queue: str, headers: dict[str, Any]) -> Iterator[None]:
    """A producer span around sending job ``job_id``'s message; its context
    goes into the message's ``headers``."""
    if not active():
        yield
        return
    from opentelemetry.propagate import inject
    from opentelemetry.trace import SpanKind

    attributes = {
        JOB_ID: str(job_id),
        "messaging.system": "celery",
        "messaging.destination.name": queue,
        "messaging.operation.type": "send",
    }
    with _tracer().start_as_current_span(
        f"publish {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        inject(headers)
        yield


@contextmanager
def job_span(
    job_id: UUID, kind: str, attempt: int, context: Mapping[str, str] | None
) -> Iterator[Callable[[str], None]]:
    """The span of one run of a job, a child of the span that created the
    job (``context``, kept in its row) and linked to the span of the message
    that woke this process. Yields a function that records the outcome."""
    if not active():
        yield _ignore
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    message = trace.get_current_span().get_span_context()
    parent = extract(dict(context)) if context else None
    links = [trace.Link(message)] if parent is not None and message.is_valid else None
    attributes = {JOB_ID: str(job_id), JOB_KIND: kind, JOB_ATTEMPT: attempt}
    with _tracer().start_as_current_span(
        f"job {kind}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ) as span:
        yield lambda outcome: span.set_attribute(JOB_OUTCOME, outcome)


def _ignore(_: str) -> None:
    """What :func:`job_span` yields when tracing is off."""


def _tracer() -> Any:
    from opentelemetry.trace import get_tracer

    return get_tracer("appstack", tracer_provider=_provider)
