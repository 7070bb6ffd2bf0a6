"""Several replicas on one machine (API_REPLICAS, WORKER_REPLICAS in the
stack's env file; tests/prod/run.sh sets three of each): Caddy spreads the
requests over every api replica, a killed api replica fails no request, and
1,000 imports run to the end, each item stored once, while a worker replica
is SIGKILLed in the middle of them. Runs after test_prod.py (file order), so
its backup, restore and rolling update worked on the replicas too."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import psql, wait_for
from tests.prod.conftest import PASSWORD, container_ids, docker, env_value, login

IMPORTS = 1000
# 100 jobs each, at most MAX_ACTIVE_JOBS_PER_USER (20) active: the submits
# beyond wait as the 429 says. Ten, since REGISTER_MAX_PER_IP (20 an hour)
# bounds the registrations from this one address.
USERS = 10
HEADER = b"sku,name,price,quantity\n"


@pytest.fixture(scope="module")
def replicas() -> int:
    count = int(env_value("API_REPLICAS"))
    assert count >= 2, "run.sh starts several api replicas"
    assert len(container_ids("api")) == count
    assert len(container_ids("worker")) == int(env_value("WORKER_REPLICAS")) >= 2
    return count


def retrying(send: Callable[[], httpx.Response], retried: list[int]) -> httpx.Response:
    """Send until the answer is not 429/503, waiting as Retry-After says: what
    a well-behaved client does at a quota, a rate limit or the upload slots."""
    while True:
        response = send()
        if response.status_code not in (429, 503):
            return response
        retried.append(response.status_code)
        time.sleep(float(response.headers.get("retry-after", "1")))


def own_jobs(prefix: str) -> str:
    """FROM and WHERE for the jobs of the users whose email starts so."""
    return f"FROM jobs j JOIN users u ON u.id = j.owner_id WHERE u.email LIKE '{prefix}%'"


def job_counts(prefix: str) -> dict[str, int]:
    """Statuses of the jobs of this run's users."""
    rows = psql(f"SELECT j.status, count(*) {own_jobs(prefix)} GROUP BY j.status")
    counts = {}
    for line in rows.splitlines():
        status, count = line.split("|")
        counts[status] = int(count)
    return counts


def backend_address(container: str) -> str:
    """The container's address on the backend network (where it meets db)."""
    networks = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    address: str = next(n["IPAddress"] for name, n in networks.items() if name.endswith("_backend"))
    return address


def kill_mid_transaction(container: str) -> None:
    """SIGKILL the worker replica in the middle of a job's database work. A
    1-row import lasts milliseconds, so the moment is found by freezing the
    replica (docker pause) and asking Postgres whether one of its
    connections is inside a transaction; if none is, it is thawed and frozen
    again a moment later."""
    address = backend_address(container)
    activity = f"FROM pg_stat_activity WHERE client_addr = '{address}'"
    in_transaction = f"SELECT count(*) {activity} AND xact_start IS NOT NULL"
    for _ in range(100):
        docker("pause", container)
        if int(psql(in_transaction)):
            docker("kill", "--signal", "KILL", container)
            return
        docker("unpause", container)
        time.sleep(0.05)
    raise AssertionError(f"{container} was never caught inside a transaction")


def test_a_thousand_imports_survive_a_worker_replica_killed_midway(
    https: httpx.Client, replicas: int
) -> None:
    prefix = f"replica-{uuid.uuid4().hex[:8]}-"
    retried: list[int] = []
    users = []
    for n in range(USERS):
        email = f"{prefix}{n}@example.com"
        registered = retrying(
            lambda email=email: https.post(  # type: ignore[misc]
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            ),
            retried,
        )
        assert registered.status_code == 201, registered.text
        users.append(login(https, email))

    def submit(n: int) -> int:
        """Import one row (a sku of its own) as user n % USERS."""
        body = HEADER + f"{prefix}{n},Item {n},1.00,1\n".encode()
        response = retrying(
            lambda: https.post(
                "/api/v1/items/import",
                files={"file": ("one.csv", body, "text/csv")},
                headers=users[n % USERS],
            ),
            retried,
        )
        return response.status_code

    started = time.monotonic()
    workers = container_ids("worker")
    backlog = USERS * 20  # what the quota lets queue up: 20 active jobs per user
    with ThreadPoolExecutor(max_workers=8) as pool:
        # A backlog first (the workers paused): the replica is killed while
        # every worker has jobs to run, and the rest arrive after the kill.
        docker("pause", *workers)
        try:
            first = list(pool.map(submit, range(backlog)))
        finally:
            docker("unpause", *workers)
        # The rest are submitted while a moment to kill is sought.
        rest = [pool.submit(submit, n) for n in range(backlog, IMPORTS)]
        killed = workers[0]
        kill_mid_transaction(killed)
        killed_at = time.monotonic() - started
        # What the dead replica had claimed: still `running` once the jobs
        # that waited on its locks (freed when its connections closed) ended.
        time.sleep(3)
        running = f"SELECT count(*) {own_jobs(prefix)} AND j.status = 'running'"
        stranded = int(psql(running))
        second = [future.result() for future in rest]
    submitted = time.monotonic() - started
    assert set(first + second) == {202}

    # The killed replica's claimed jobs stay `running` until their heartbeat
    # is JOB_STALE_AFTER_SECONDS old; the relay then hands them to the others
    # (a claim it had not committed was rolled back: queued again at once).
    try:
        wait_for(
            lambda: job_counts(prefix) == {"succeeded": IMPORTS},
            timeout=240,
            interval=1,
            what=f"all {IMPORTS} imports to succeed",
        )
        finished = time.monotonic() - started
    finally:
        docker("start", killed)  # back to full strength for the tests after
    reclaimed = int(psql(f"SELECT count(*) {own_jobs(prefix)} AND j.attempts > 1"))
    items = f"FROM items WHERE sku LIKE '{prefix}%'"
    stored = psql(f"SELECT count(*), count(DISTINCT (owner_id, sku)) {items}")
    print(
        f"\n{IMPORTS} imports over {replicas} worker replicas: submitted in {submitted:.1f}s, "
        f"one replica SIGKILLed at {killed_at:.1f}s with {stranded} claimed job(s), "
        f"{reclaimed} job(s) run again, all succeeded at {finished:.1f}s; "
        f"{len(retried)} submits waited on a 429/503"
    )
    assert stored == f"{IMPORTS}|{IMPORTS}"  # every item, once
    assert reclaimed >= stranded  # the killed replica's claimed jobs ran again elsewhere


def container_logs(container: str) -> str:
    """Everything a container logged, both streams."""
    done = subprocess.run(
        ["docker", "logs", container], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout + done.stderr


def served_by(request_ids: list[str]) -> dict[str, int]:
    """How many of these requests each api container logged."""
    served = {}
    for container in container_ids("api"):
        logs = container_logs(container)
        served[container] = sum(1 for rid in request_ids if rid in logs)
    return served


def test_caddy_spreads_requests_over_every_api_replica(
    https: httpx.Client, account: dict[str, str], replicas: int
) -> None:
    """One client on one keep-alive connection still reaches every replica:
    Caddy balances each request over the addresses Docker's DNS gives for
    `api`, not over connections."""
    headers = {"Authorization": account["Authorization"]}
    request_ids = [f"spread-{uuid.uuid4().hex}" for _ in range(40 * replicas)]
    for rid in request_ids:
        response = https.get("/api/v1/users/me", headers={**headers, "X-Request-ID": rid})
        assert response.status_code == 200, response.text

    def all_logged() -> dict[str, int] | None:
        served = served_by(request_ids)
        return served if sum(served.values()) == len(request_ids) else None

    served: dict[str, int] = wait_for(all_logged, timeout=10, what="every request in an api log")
    print(f"\n{len(request_ids)} requests, served per replica: {sorted(served.values())}")
    assert len(served) == replicas
    # A fair share is 40 each; at least half of it (random choice among idle
    # replicas falls below 20 about once in 10^4 runs).
    assert min(served.values()) >= 20, served


def test_killing_an_api_replica_under_load_fails_no_request(
    https: httpx.Client, account: dict[str, str], replicas: int
) -> None:
    headers = {"Authorization": account["Authorization"]}
    outcomes: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def load() -> None:
        """About 5 requests a second per thread, until told to stop."""
        while not stop.is_set():
            try:
                status: int | str = https.get("/api/v1/users/me", headers=headers).status_code
            except httpx.HTTPError as exc:
                status = repr(exc)
            outcomes.append((time.monotonic(), status))
            time.sleep(0.2)

    victim = container_ids("api")[-1]
    loaders = [threading.Thread(target=load) for _ in range(2)]
    for loader in loaders:
        loader.start()
    try:
        wait_for(lambda: len(outcomes) >= 10, timeout=30, what="the load to start")
        docker("kill", "--signal", "KILL", victim)
        killed_at = time.monotonic()
        time.sleep(8)
    finally:
        stop.set()
        for loader in loaders:
            loader.join(timeout=60)
        docker("start", victim)
    after = [o for o in outcomes if o[0] > killed_at]
    failed = [o for o in outcomes if o[1] != 200]
    print(
        f"\napi replica SIGKILLed under load: {len(outcomes)} requests, "
        f"{len(after)} after the kill, {len(failed)} failed"
    )
    assert len(after) >= 40
    assert failed == []
    wait_for(
        lambda: "healthy" in docker("inspect", "-f", "{{.State.Health.Status}}", victim),
        timeout=120,
        what="the killed replica to be back",
    )
