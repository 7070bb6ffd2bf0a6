"""One trace from the request to the job's run, on the running stack, read
from the suite's OTLP receiver (tests/tracing/receiver.py): the api's
request span, its SQL, the publish of the job's message and the worker's
run of the job, also when the relay re-sends a lost message."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.e2e.conftest import compose, new_user_headers, wait_for

OTLP_URL = f"http://127.0.0.1:{os.environ.get('OTLP_TEST_PORT', '18431')}"
JOB_ID = "appstack.job.id"
# OTLP's span kinds.
SERVER, PRODUCER, CONSUMER = 2, 4, 5

Span = dict[str, Any]


def spans(trace_id: str | None = None) -> list[Span]:
    """What the receiver holds (of one trace)."""
    params = {"trace_id": trace_id} if trace_id else None
    answer = httpx.get(f"{OTLP_URL}/spans", params=params, timeout=10)
    answer.raise_for_status()
    found: list[Span] = answer.json()
    return found


def import_csv(api: httpx.Client, headers: dict[str, str]) -> tuple[str, str]:
    """Queue a one-row import; its job id and its request id."""
    sku = f"trace-{uuid.uuid4().hex[:8]}"
    answer = api.post(
        "/api/v1/items/import",
        files={"file": (f"{sku}.csv", f"sku,name,price,quantity\n{sku},Traced,1.00,1\n")},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"], answer.headers["X-Request-ID"]


def wait_succeeded(api: httpx.Client, headers: dict[str, str], job_id: str) -> None:
    def status() -> bool:
        job = api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        assert job["status"] in {"queued", "running", "succeeded"}, job
        return bool(job["status"] == "succeeded")

    wait_for(status, timeout=60, interval=0.3, what=f"job {job_id} to succeed")


def job_run(job_id: str) -> Span:
    """The worker's span of the job's run (once exported)."""

    def find() -> Span | None:
        runs = [
            s
            for s in spans()
            if s["service"] == "appstack-worker" and s["attributes"].get(JOB_ID) == job_id
            if s["kind"] == CONSUMER and s["name"].startswith("job ")
        ]
        return runs[0] if runs else None

    found: Span = wait_for(find, timeout=30, interval=0.3, what=f"the run span of job {job_id}")
    return found


def trace_of(run: Span) -> list[Span]:
    """The spans of the run's trace, once the api's have been exported too."""

    def whole() -> list[Span] | None:
        trace = spans(run["trace_id"])
        return trace if any(s["kind"] == SERVER for s in trace) else None

    found: list[Span] = wait_for(whole, timeout=30, interval=0.3, what="the api's spans")
    return found


def request_span(trace: list[Span]) -> Span:
    [server] = [s for s in trace if s["service"] == "appstack-api" and s["kind"] == SERVER]
    assert server["name"] == "POST /api/v1/items/import", server
    return server


def is_sql(span: Span) -> bool:
    attributes = span["attributes"]
    return "postgresql" in (attributes.get("db.system"), attributes.get("db.system.name"))


def publishes(trace: list[Span], job_id: str) -> list[Span]:
    return [s for s in trace if s["kind"] == PRODUCER and s["attributes"].get(JOB_ID) == job_id]


def log_lines(service: str, since: str) -> list[dict[str, Any]]:
    """The service's JSON log lines since ``since``."""
    out = compose("logs", "--no-color", "--no-log-prefix", "--since", since, service).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_one_trace_from_the_request_to_the_job(api: httpx.Client) -> None:
    headers = new_user_headers(api, "traced")
    since = datetime.now(UTC).isoformat(timespec="seconds")
    job_id, request_id = import_csv(api, headers)
    wait_succeeded(api, headers, job_id)
    run = job_run(job_id)
    trace_id = run["trace_id"]
    trace = trace_of(run)
    server = request_span(trace)
    assert server["attributes"].get("http.response.status_code", 202) == 202
    # The job is a child of the request that created it.
    assert run["parent_span_id"] == server["span_id"]
    assert any(is_sql(s) and s["service"] == "appstack-api" for s in trace), trace
    [publish] = publishes(trace, job_id)
    assert publish["service"] == "appstack-api"
    assert publish["name"] == "publish jobs"
    # The worker's run of the message the api sent, its SQL, and the job's
    # outcome.
    assert any(s["name"] == "run/jobs.run" and s["kind"] == CONSUMER for s in trace), trace
    assert any(is_sql(s) and s["service"] == "appstack-worker" for s in trace), trace
    assert run["attributes"]["appstack.job.outcome"] == "succeeded"
    assert run["attributes"]["appstack.job.kind"] == "items.import"

    # Every log line of the request and of the run carries the trace.
    api_lines = [line for line in log_lines("api", since) if line.get("request_id") == request_id]
    assert api_lines, "no api log line of the request"
    assert all(line.get("trace_id") == trace_id and line.get("span_id") for line in api_lines)
    worker_lines = [line for line in log_lines("worker", since) if line.get("job_id") == job_id]
    assert worker_lines, "no worker log line of the job"
    assert all(line.get("trace_id") == trace_id and line.get("span_id") for line in worker_lines)


def test_a_job_the_relay_re_sends_stays_in_the_request_trace(api: httpx.Client) -> None:
    headers = new_user_headers(api, "traced")
    # The worker stopped, the api's message is deleted from the broker: only
    # the relay (which runs in the worker) can deliver the job, once it is
    # back and JOB_RESEND_AFTER_SECONDS passed without a claim.
    compose("stop", "worker")
    try:
        job_id, _ = import_csv(api, headers)
        compose("exec", "-T", "redis", "redis-cli", "DEL", "jobs")
    finally:
        compose("start", "worker")
    wait_succeeded(api, headers, job_id)
    run = job_run(job_id)
    trace = trace_of(run)
    server = request_span(trace)
    assert run["parent_span_id"] == server["span_id"]
    # The api's publish is in the request's trace; the message that did
    # deliver the job is the relay's, in the relay's own trace, and the run
    # links to it.
    [lost] = publishes(trace, job_id)
    assert lost["service"] == "appstack-api"
    relayed = [
        s
        for s in spans()
        if s["kind"] == PRODUCER
        and s["attributes"].get(JOB_ID) == job_id
        and s["service"] == "appstack-worker"
    ]
    assert relayed, "no publish of the job by the relay"
    assert all(s["trace_id"] != run["trace_id"] for s in relayed)
    linked = {link["trace_id"] for link in run["links"]}
    assert linked & {s["trace_id"] for s in relayed}, (run["links"], relayed)
