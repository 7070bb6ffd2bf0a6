"""The whole stack: API, worker, database and broker working together."""

from __future__ import annotations

import re

import httpx

from tests.e2e.conftest import compose, redis_config, wait_for

LOOP_ERRORS = re.compile(
    r"attached to a different loop|another operation is in progress|Event loop is closed",
    re.IGNORECASE,
)


def test_ready(api: httpx.Client) -> None:
    response = api.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["failed"] == []


def test_every_service_is_healthy_and_migrate_exited_0() -> None:
    states = compose("ps", "-a", "--format", "{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}")
    rows = {line.split()[0]: line.split()[1:] for line in states.stdout.splitlines()}
    assert rows["migrate"][0] == "exited", rows
    assert rows["migrate"][-1] == "0", rows
    for service in ("db", "redis", "api", "worker"):
        assert rows[service][:2] == ["running", "healthy"], rows
    assert rows["scheduler"][0] == "running", rows


def test_api_enqueues_and_the_worker_writes(
    api: httpx.Client, auth_headers: dict[str, str]
) -> None:
    created = api.post("/api/v1/jobs/ping", json={"message": "end to end"}, headers=auth_headers)
    assert created.status_code == 202, created.text
    location = created.headers["location"]

    def done() -> dict[str, object] | None:
        job: dict[str, object] = api.get(location, headers=auth_headers).json()
        return job if job["status"] == "succeeded" else None

    job = wait_for(done, timeout=10, what="the worker to finish the ping job")
    assert job["attempts"] == 1
    result = api.get(f"{location}/result", headers=auth_headers).json()
    assert result["pong"] == "end to end"


def test_200_tasks_in_a_row_on_two_worker_processes(
    api: httpx.Client, auth_headers: dict[str, str]
) -> None:
    ids = []
    for n in range(200):
        response = api.post("/api/v1/jobs/ping", json={"message": f"n{n}"}, headers=auth_headers)
        assert response.status_code == 202
        ids.append(response.json()["id"])

    def all_finished() -> list[dict[str, object]] | None:
        jobs = [api.get(f"/api/v1/jobs/{job_id}", headers=auth_headers).json() for job_id in ids]
        return jobs if all(j["status"] in {"succeeded", "failed"} for j in jobs) else None

    jobs = wait_for(all_finished, timeout=120, interval=2, what="200 ping jobs")
    assert [j["status"] for j in jobs] == ["succeeded"] * 200
    results = [
        api.get(f"/api/v1/jobs/{job_id}/result", headers=auth_headers).json() for job_id in ids
    ]
    assert [r["pong"] for r in results] == [f"n{n}" for n in range(200)]
    # Both prefork children ran tasks, each on its own loop and engine.
    assert len({r["pid"] for r in results}) == 2

    logs = compose("logs", "--no-color", "worker").stdout
    assert not LOOP_ERRORS.findall(logs)
    assert "Traceback" not in logs


def test_api_and_worker_log_their_connection_budget() -> None:
    """Both services state their worst-case connections against the server's
    max_connections (read with SHOW max_connections) at start-up."""
    for service in ("api", "worker"):
        logs = compose("logs", "--no-color", service).stdout
        line = next(
            (ln for ln in logs.splitlines() if "database connections, worst case" in ln), ""
        )
        assert line, f"{service} logged no connection budget"
        assert "max_connections=100" in line, line
        assert "WORKER_CONCURRENCY" in line, line


def test_redis_keeps_what_it_is_given() -> None:
    """The broker survives a restart (append-only file) and refuses writes
    rather than evicting queued messages when full."""
    assert redis_config("appendonly", "maxmemory-policy") == {
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
    }
