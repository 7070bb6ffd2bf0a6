"""Logs, metrics and Flower on the running stack (several gunicorn workers,
a real Celery worker)."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from tests.e2e.conftest import compose, wait_for
from tests.metrics import counter, scrape_headers

FAMILY = "appstack_http_requests"


def wait_succeeded(api: httpx.Client, headers: dict[str, str], job_id: str) -> None:
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"] == "succeeded",
        timeout=30,
        what=f"job {job_id} to succeed",
    )


def test_one_request_id_in_the_api_and_the_worker_logs(
    api: httpx.Client, auth_headers: dict[str, str]
) -> None:
    rid = f"e2e-{uuid.uuid4().hex}"
    created = api.post(
        "/api/v1/jobs/ping",
        json={"message": "follow me"},
        headers={**auth_headers, "X-Request-ID": rid},
    )
    assert created.status_code == 202, created.text
    assert created.headers["x-request-id"] == rid
    job_id = created.json()["id"]
    wait_succeeded(api, auth_headers, job_id)

    def lines(service: str) -> list[str]:
        logs = compose("logs", "--no-color", service).stdout.splitlines()
        return [line for line in logs if rid in line]

    api_lines = wait_for(lambda: lines("api"), timeout=10, what="the api's log line")
    assert any("POST /api/v1/jobs/ping 202" in line for line in api_lines), api_lines
    worker_lines = wait_for(lambda: lines("worker"), timeout=10, what="the worker's log lines")
    # The job's own lines carry both ids.
    assert any(f"job_id={job_id}" in line and "succeeded" in line for line in worker_lines), (
        worker_lines
    )


def api_metrics_token() -> str | None:
    """The METRICS_TOKEN the running api was started with (None: unset)."""
    printed = compose("exec", "-T", "api", "printenv", "METRICS_TOKEN", check=False)
    return printed.stdout.strip() or None


def test_metrics_add_up_over_every_gunicorn_worker(
    api: httpx.Client, auth_headers: dict[str, str]
) -> None:
    route = "/api/v1/items/{item_id}"
    scrape = scrape_headers(api_metrics_token())
    before = counter(api.get("/metrics", headers=scrape).text, FAMILY, route=route, status="404")
    # New connections, so that the requests spread over the workers.
    for _ in range(30):
        with httpx.Client(base_url=api.base_url, timeout=10) as fresh:
            missing = fresh.get(f"/api/v1/items/{uuid.uuid4()}", headers=auth_headers)
            assert missing.status_code == 404
    after = counter(api.get("/metrics", headers=scrape).text, FAMILY, route=route, status="404")
    assert after == before + 30


def test_the_worker_serves_job_metrics(api: httpx.Client, auth_headers: dict[str, str]) -> None:
    created = api.post("/api/v1/jobs/ping", json={"message": "count me"}, headers=auth_headers)
    assert created.status_code == 202
    job_id = created.json()["id"]
    wait_succeeded(api, auth_headers, job_id)
    script = (
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:9808/metrics', timeout=5).read().decode())"
    )
    text = compose("exec", "-T", "worker", "python", "-c", script).stdout
    assert counter(text, "appstack_jobs_finished", kind="ping", status="succeeded") >= 1
    assert "appstack_job_duration_seconds_bucket" in text
    assert "appstack_jobs_queued" in text
    assert "appstack_worker_consuming 1.0" in text.splitlines()


def test_flower_asks_for_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    port = os.environ.get("FLOWER_PORT", "5555")
    monkeypatch.setenv("FLOWER_USER", "ops")
    monkeypatch.setenv("FLOWER_PASSWORD", "flower-e2e-password")
    compose("--profile", "monitoring", "up", "-d", "--no-deps", "flower")
    try:
        url = f"http://127.0.0.1:{port}/"

        def answered() -> httpx.Response | None:
            try:
                return httpx.get(url, timeout=5)
            except httpx.TransportError:
                return None

        anonymous = wait_for(answered, timeout=60, what="Flower to answer")
        assert anonymous.status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "flower-e2e-password"), timeout=5).status_code == 200
    finally:
        compose("--profile", "monitoring", "rm", "-sf", "flower", check=False)
