"""Readiness follows the database: 503 naming it while it is down, 200 again
once it is back, without restarting the API. (Runs last: it stops Postgres.)"""

from __future__ import annotations

import httpx

from tests.e2e.conftest import compose, wait_for


def ready(api: httpx.Client) -> httpx.Response:
    return api.get("/health/ready")


def test_ready_tracks_postgres(api: httpx.Client, auth_headers: dict[str, str]) -> None:
    assert ready(api).status_code == 200
    assert api.get("/api/v1/items", headers=auth_headers).status_code == 200
    api_container = compose("ps", "-q", "api").stdout.strip()

    compose("stop", "db")
    try:
        down = wait_for(
            lambda: (r := ready(api)).status_code == 503 and r, timeout=30, what="a 503"
        )
        body = down.json()
        assert body["status"] == "unavailable"
        assert "database" in body["failed"]
        assert body["checks"]["database"].startswith("error: ")
        assert body["checks"]["redis"] == "ok"
        assert api.get("/health/live").status_code == 200
        # A request that needs the database says so, never a bare 500.
        for _ in range(5):
            during = api.get("/api/v1/items", headers=auth_headers)
            assert during.status_code == 503, during.text
            assert during.json()["error"]["code"] == "service_unavailable"
            assert during.headers["retry-after"] == "5"
    finally:
        compose("start", "db")

    wait_for(lambda: ready(api).status_code == 200, timeout=60, what="ready again")
    # Pooled connections died with the restart: a request may still meet one
    # (503, and the pool is renewed), never a 500, and then all succeed.
    statuses = [api.get("/api/v1/items", headers=auth_headers).status_code for _ in range(20)]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-5:] == [200] * 5, statuses
    # The same API container answered throughout: no restart was needed.
    assert compose("ps", "-q", "api").stdout.strip() == api_container
    restarts = compose("ps", "--format", "{{.Service}} {{.Status}}").stdout
    assert "api Up" in restarts
