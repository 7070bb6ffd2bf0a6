"""Tracing (core.tracing): off unless an OTLP endpoint is set, and then
nothing of OpenTelemetry is even imported; on, the job's spans join the
trace kept with the job and every log line names its trace and span.

Each case runs in a fresh interpreter: a process sets its tracer provider
once, and these tests must leave the suite's process as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from core import tracing


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, with no OTEL_* variable but ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def otel_modules_after(imports: str) -> list[str]:
    """The opentelemetry modules loaded by ``imports`` in a fresh interpreter
    with tracing off; tracing's functions do nothing there."""
    code = f"""
import sys
{imports}
from core import tracing
assert not tracing.setup("api") and not tracing.setup("worker", celery=True)
assert tracing.carrier() is None
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""
    result = python(code)
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout.splitlines()[-1].replace("'", '"'))
    return modules


# Libraries that load parts of OpenTelemetry themselves when they find it
# installed: FastAPI its API (for its native telemetry), redis-py the SDK's
# metrics module (for its own opt-in metrics). Our code adds nothing to them.
LIBRARIES = "import fastapi, redis, redis.asyncio, celery, kombu.transport.redis, sqlalchemy"
# What tracing loads, and nothing else does.
TRACING_ONLY = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
)


def test_with_tracing_off_the_app_imports_nothing_of_opentelemetry() -> None:
    libraries = otel_modules_after(LIBRARIES)
    app = otel_modules_after(
        f"{LIBRARIES}\nimport api.main, worker.app, worker.tasks, core.jobs.runner, core.queue"
    )
    assert app == libraries
    assert not [m for m in app if m.startswith(TRACING_ONLY)]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_enabled_by_an_otlp_endpoint(env: dict[str, str], expected: bool) -> None:
    assert tracing.enabled(env) is expected


def test_off_the_job_and_publish_spans_do_nothing() -> None:
    headers: dict[str, str] = {}
    with tracing.publish_span(uuid.uuid4(), "jobs", headers):
        pass
    assert headers == {}
    with tracing.job_span(uuid.uuid4(), "k", 1, {"traceparent": "x"}) as traced:
        traced("succeeded")


# Tracing on, spans kept in memory (the endpoint is never reached: the
# batch processor would export every 10 minutes).
ON = """
import json, logging, uuid
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from core import tracing
from core.logging import configure_logging
assert tracing.setup("worker", celery=True)
memory = InMemorySpanExporter()
tracing._provider.add_span_processor(SimpleSpanProcessor(memory))
configure_logging("INFO", "json")
log = logging.getLogger("check")
"""
ON_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "600000"}


def run_on(code: str) -> list[str]:
    result = python(ON + code, **ON_ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_job_run_joins_the_trace_kept_with_the_job_and_links_to_its_message() -> None:
    code = """
from opentelemetry import trace
tracer = trace.get_tracer("check")
job = uuid.uuid4()
with tracer.start_as_current_span("request") as request:
    kept = tracing.carrier()
    headers = {}
    with tracing.publish_span(job, "jobs", headers):
        pass
with tracer.start_as_current_span("message") as message:
    with tracing.job_span(job, "items.import", 2, kept) as traced:
        log.info("running")
        traced("succeeded")
spans = {s.name: s for s in memory.get_finished_spans()}
run, publish = spans["job items.import"], spans["publish jobs"]
request, message = spans["request"], spans["message"]
assert run.context.trace_id == request.context.trace_id != message.context.trace_id
assert run.parent.span_id == request.context.span_id
assert [link.context.span_id for link in run.links] == [message.context.span_id]
assert publish.parent.span_id == request.context.span_id
assert publish.kind == trace.SpanKind.PRODUCER and run.kind == trace.SpanKind.CONSUMER
assert headers["traceparent"].split("-")[2] == format(publish.context.span_id, "016x")
assert dict(run.attributes) == {
    "appstack.job.id": str(job), "appstack.job.kind": "items.import",
    "appstack.job.attempt": 2, "appstack.job.outcome": "succeeded",
}
assert publish.attributes["appstack.job.id"] == str(job)
ids = [format(run.context.trace_id, "032x"), format(run.context.span_id, "016x")]
print("IDS", json.dumps(ids))
"""
    logged = run_on(code)
    [ids] = [line.removeprefix("IDS ") for line in logged if line.startswith("IDS ")]
    trace_id, span_id = json.loads(ids)
    [line] = [json.loads(line) for line in logged if '"running"' in line]
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)


def test_log_lines_carry_trace_and_span_ids_inside_a_span_only() -> None:
    code = """
from opentelemetry import trace
log.info("outside")
with trace.get_tracer("check").start_as_current_span("s") as span:
    log.info("inside")
    print("SPAN", format(span.get_span_context().span_id, "016x"))
"""
    lines = run_on(code)
    outside = json.loads(next(line for line in lines if '"outside"' in line))
    inside = json.loads(next(line for line in lines if '"inside"' in line))
    assert "trace_id" not in outside
    assert "span_id" not in outside
    assert len(inside["trace_id"]) == 32
    assert f"SPAN {inside['span_id']}" in lines


def test_without_a_kept_context_the_run_is_a_child_of_its_message() -> None:
    code = """
from opentelemetry import trace
with trace.get_tracer("check").start_as_current_span("message") as message:
    with tracing.job_span(uuid.uuid4(), "k", 1, None):
        pass
spans = {s.name: s for s in memory.get_finished_spans()}
assert spans["job k"].parent.span_id == spans["message"].context.span_id
assert not spans["job k"].links
print("ok")
"""
    assert "ok" in run_on(code)


def test_the_service_is_named_after_the_component_unless_otel_service_name() -> None:
    code = """
from core import tracing
tracing.setup("api")
print(tracing._provider.resource.attributes["service.name"])
"""
    assert python(code, **ON_ENV).stdout.split()[-1] == "appstack-api"
    named = python(code, **ON_ENV, OTEL_SERVICE_NAME="shop")
    assert named.stdout.split()[-1] == "shop"
