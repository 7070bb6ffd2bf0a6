"""Delivery guarantees under faults, on the real stack.

Every job here is a one-row CSV import with its own sku, so "every item
exists exactly once" is checkable from the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_URL, compose, psql, wait_for

Headers = dict[str, str]


PASSWORD = "fault tolerant password"


def login(api: httpx.Client, email: str) -> httpx.Response:
    """Log in (the login throttle reads Redis)."""
    return api.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})


@pytest.fixture
def email(api: httpx.Client) -> str:
    """A fresh user per test, so that job and item counts are the test's own."""
    email = f"faults-{uuid.uuid4().hex[:12]}@example.com"
    assert api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).is_success
    return email


@pytest.fixture
def user(api: httpx.Client, email: str) -> Headers:
    token = login(api, email)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def submit(headers: Headers, skus: Sequence[str], *, threads: int = 8) -> list[str]:
    """Queue a one-row import per sku; every submission must be accepted."""

    def one(sku: str) -> httpx.Response:
        with httpx.Client(base_url=API_URL, timeout=30) as client:
            return client.post(
                "/api/v1/items/import",
                files={
                    "file": (f"{sku}.csv", f"sku,name,price,quantity\n{sku},Item {sku},1.00,1\n")
                },
                headers=headers,
            )

    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(one, skus))
    assert [r.status_code for r in responses] == [202] * len(skus), {
        r.status_code: r.text for r in responses if r.status_code != 202
    }
    return [r.json()["id"] for r in responses]


def totals(api: httpx.Client, headers: Headers) -> dict[str, int]:
    """How many of the user's jobs are in each status. One read per status:
    read against the lifecycle (finished first, queued last), so that a job
    moving on between two reads is missed at worst, never counted twice."""
    return {
        status: api.get(f"/api/v1/jobs?status={status}&limit=1", headers=headers).json()["total"]
        for status in ("succeeded", "failed", "cancelled", "running", "queued")
    }


def wait_succeeded(api: httpx.Client, headers: Headers, expected: int, timeout: float) -> None:
    """Wait until ``expected`` jobs succeeded; fail at once if any failed."""

    last: dict[str, int] = {}

    def done() -> dict[str, int] | None:
        counts = last.update(totals(api, headers)) or last
        assert counts["failed"] == 0, counts
        return counts if counts["succeeded"] >= expected else None

    try:
        counts = wait_for(done, timeout=timeout, interval=1, what=f"{expected} jobs to succeed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; job statuses: {last}") from None
    assert counts == {"queued": 0, "running": 0, "succeeded": expected, "failed": 0, "cancelled": 0}


def skus_stored(api: httpx.Client, headers: Headers) -> list[str]:
    skus: list[str] = []
    while True:
        page = api.get(f"/api/v1/items?limit=100&offset={len(skus)}&sort=name", headers=headers)
        batch = [item["sku"] for item in page.json()["items"]]
        if not batch:
            return skus
        skus += batch


def all_jobs(api: httpx.Client, headers: Headers) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    while True:
        page = api.get(f"/api/v1/jobs?limit=100&offset={len(jobs)}", headers=headers).json()
        if not page["items"]:
            return jobs
        jobs += page["items"]


def assert_imported_once(api: httpx.Client, headers: Headers, skus: Sequence[str]) -> None:
    stored = skus_stored(api, headers)
    assert len(stored) == len(skus)
    assert sorted(stored) == sorted(skus)
    jobs = all_jobs(api, headers)
    assert len(jobs) == len(skus)
    assert all(job["counts"]["created"] + job["counts"]["unchanged"] == 1 for job in jobs)


def test_500_imports_while_the_worker_is_killed_three_times(
    api: httpx.Client, user: Headers
) -> None:
    skus = [f"kill-{n:03d}" for n in range(500)]
    observed: list[dict[str, int]] = []
    with ThreadPoolExecutor(1) as pool:
        burst = pool.submit(submit, user, skus, threads=4)
        done = 0
        for _ in range(3):

            def progressed(since: int = done) -> bool:
                return totals(api, user)["succeeded"] >= since + 40

            # Kill while the worker is busy: jobs are running and queued.
            wait_for(progressed, timeout=90, interval=0.2, what="the worker to make progress")
            compose("kill", "-s", "SIGKILL", "worker")
            observed.append(totals(api, user))
            done = observed[-1]["succeeded"]
            time.sleep(1)  # submissions go on while the worker is dead
            compose("start", "worker")
        burst.result(timeout=300)

    wait_succeeded(api, user, 500, timeout=240)
    assert_imported_once(api, user, skus)
    print(f"\nstatuses right after each SIGKILL: {observed}")
    # The kills did interrupt work: jobs were still queued or running each time.
    assert all(t["queued"] + t["running"] > 0 for t in observed), observed


def test_redis_restart_during_a_burst_of_200(api: httpx.Client, user: Headers, email: str) -> None:
    skus = [f"redis-{n:03d}" for n in range(200)]
    with ThreadPoolExecutor(1) as pool:
        burst = pool.submit(submit, user, skus, threads=4)
        wait_for(
            lambda: totals(api, user)["queued"] + totals(api, user)["succeeded"] >= 40,
            timeout=60,
            interval=0.1,
            what="the burst to start",
        )
        started = time.monotonic()
        compose("restart", "redis")
        restart_seconds = time.monotonic() - started
        # The API's Redis connections died with the restart; the next login
        # must reconnect rather than fail.
        after_restart = login(api, email)
        assert after_restart.status_code == 200, after_restart.text
        ids = burst.result(timeout=300)
    assert len(ids) == 200
    wait_succeeded(api, user, 200, timeout=180)
    assert_imported_once(api, user, skus)
    print(f"\nredis restart took {restart_seconds:.1f}s during the burst")


def test_jobs_submitted_while_the_worker_is_stopped(api: httpx.Client, user: Headers) -> None:
    compose("stop", "worker")
    try:
        skus = [f"stopped-{n:02d}" for n in range(50)]
        submit(user, skus)
        time.sleep(2)
        assert totals(api, user)["queued"] == 50
    finally:
        compose("start", "worker")
    wait_succeeded(api, user, 50, timeout=120)
    assert_imported_once(api, user, skus)


def test_a_poison_job_fails_after_max_attempts(api: httpx.Client, user: Headers) -> None:
    me = api.get("/api/v1/users/me", headers=user).json()["id"]
    # No route creates this kind; the relay finds the row and sends it.
    insert = (
        "INSERT INTO jobs (id, owner_id, kind, payload, enqueued_at) "
        "VALUES (gen_random_uuid(), '{owner}', 'debug.crash', '{{}}', now() - interval '1 hour') "
        "RETURNING id;"
    )
    job_id = psql(insert.format(owner=uuid.UUID(me)))

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}", headers=user).json()
        return job if job["status"] not in {"queued", "running"} else None

    job = wait_for(finished, timeout=120, interval=1, what="the poison job to give up")
    assert job["status"] == "failed"
    assert job["attempts"] == 3
    assert "stopped responding" in job["error"]
    assert "MAX_JOB_ATTEMPTS=3" in job["error"]
    logs = compose("logs", "--no-color", "worker").stdout
    assert logs.count(f"job {job_id}: debug.crash is killing worker process") == 3

    # The worker survived its children being killed and still runs jobs.
    [after] = submit(user, ["after-poison"])
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{after}", headers=user).json()["status"] == "succeeded",
        timeout=60,
        what="a job after the poison one",
    )


def worker_health() -> int:
    """The status of the worker's /health (what its compose healthcheck asks)."""
    script = (
        "import urllib.request as u, urllib.error as e\n"
        "try: print(u.urlopen('http://127.0.0.1:9808/health', timeout=3).status)\n"
        "except e.HTTPError as x: print(x.code)"
    )
    return int(compose("exec", "-T", "worker", "python", "-c", script).stdout)


def test_redis_down_the_api_accepts_and_the_worker_reports_unhealthy(
    api: httpx.Client, user: Headers
) -> None:
    assert worker_health() == 200
    compose("stop", "redis")
    try:
        # The job row is committed; only the message is lost (the relay
        # sends it again once Redis is back).
        [job_id] = submit(user, ["while-redis-was-down"])
        assert api.get(f"/api/v1/jobs/{job_id}", headers=user).json()["status"] == "queued"
        wait_for(lambda: worker_health() == 503, timeout=30, what="the worker to report 503")
    finally:
        compose("start", "redis")
    wait_for(lambda: worker_health() == 200, timeout=60, what="the worker to consume again")
    wait_succeeded(api, user, 1, timeout=60)
    assert_imported_once(api, user, ["while-redis-was-down"])
