"""Job benchmarks against the running stack (see ``bench/run.sh``).

1. A generated 100,000-row CSV imported through the API and the worker, timed
   from the start of the upload until the job is seen ``succeeded``, next to
   ``psql \\copy`` of the same file into a table shaped like ``items``
   (``LIKE items INCLUDING ALL`` plus the foreign key to users: the same
   columns, constraints, indexes and checks) on the same database. Each is run
   ``--repeat`` times, each time into an empty table (the benchmark's stack is
   thrown away afterwards, so ``items`` is truncated first); medians are
   reported.
2. Submit-to-succeeded latency of 1-row imports, one at a time.
3. Throughput: 1,000 1-row imports submitted at once, until all succeeded;
   and the worker alone: as many queued while it is paused, then drained.
4. Fairness: user B's 1-row import, submit to succeeded by the server's
   clock, idle and behind user A's 200 queued 1-row imports (medians of 5).

Prints a table and merges its figures into ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.report import save

API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000")
HEADER = "sku,name,description,price,quantity\n"


def compose(*args: str, input_bytes: bytes | None = None) -> str:
    """``docker compose`` on the benchmark's project."""
    result = subprocess.run(
        ["docker", "compose", *args], input=input_bytes, capture_output=True, check=True
    )
    return result.stdout.decode()


def psql(sql: str) -> str:
    """Run SQL in the db container; returns unaligned output."""
    return compose(
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        'psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAq',
        input_bytes=sql.encode(),
    ).strip()


def generate_csv(rows: int, seed: int = 20261121) -> bytes:
    """A deterministic CSV of ``rows`` valid items (about 60 bytes a row)."""
    rng = random.Random(seed)
    words = ["red", "blue", "steel", "oak", "mug", "lamp", "chair", "desk", "plate", "bowl"]
    lines = [HEADER]
    for n in range(rows):
        name = f"{rng.choice(words).title()} {rng.choice(words)} {n}"
        description = "" if n % 5 == 0 else f"{rng.choice(words)} {rng.choice(words)}"
        price = f"{rng.randrange(1, 100_000) / 100:.2f}"
        lines.append(f"SKU-{n:07d},{name},{description},{price},{rng.randrange(0, 1000)}\n")
    return "".join(lines).encode()


class Client:
    """A registered user of the stack under test."""

    def __init__(self) -> None:
        self.http = httpx.Client(base_url=API_URL, timeout=120)
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        password = "benchmark password"
        self.http.post("/api/v1/auth/register", json={"email": email, "password": password})
        token = self.http.post("/api/v1/auth/login", data={"username": email, "password": password})
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        self.id = self.http.get("/api/v1/users/me", headers=self.headers).json()["id"]

    def upload(self, content: bytes, http: httpx.Client | None = None) -> str:
        response = (http or self.http).post(
            "/api/v1/items/import",
            files={"file": ("items.csv", content, "text/csv")},
            headers=self.headers,
        )
        response.raise_for_status()
        job_id: str = response.json()["id"]
        return job_id

    def upload_all(self, payloads: list[bytes], threads: int) -> None:
        """Upload every payload, from ``threads`` client threads at once
        (each with its own connection)."""

        def submit(chunk: list[bytes]) -> None:
            with httpx.Client(base_url=API_URL, timeout=60) as http:
                for content in chunk:
                    self.upload(content, http)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(submit, [payloads[i::threads] for i in range(threads)]))

    def wait(self, job_id: str, interval: float) -> dict[str, Any]:
        while True:
            job: dict[str, Any] = self.http.get(
                f"/api/v1/jobs/{job_id}", headers=self.headers
            ).json()
            if job["status"] == "succeeded":
                return job
            if job["status"] in {"failed", "cancelled"}:
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
            time.sleep(interval)

    def succeeded(self) -> int:
        page = self.http.get("/api/v1/jobs?status=succeeded&limit=1", headers=self.headers)
        total: int = page.json()["total"]
        return total


def import_rows_per_s(content: bytes, rows: int) -> tuple[float, dict[str, Any]]:
    """Upload to succeeded, for a fresh user (so every row is created)."""
    client = Client()
    psql("TRUNCATE items")
    started = time.perf_counter()
    job = client.wait(client.upload(content), interval=0.02)
    elapsed = time.perf_counter() - started
    assert job["counts"]["created"] == rows, job["counts"]
    return rows / elapsed, job


def copy_rows_per_s(content: bytes, rows: int, owner_id: str) -> float:
    """``psql \\copy`` of the same file into a fresh table shaped like items."""
    compose("exec", "-T", "db", "sh", "-c", "cat > /tmp/bench.csv", input_bytes=content)
    psql(
        "DROP TABLE IF EXISTS bench_copy;"
        "CREATE TABLE bench_copy (LIKE items INCLUDING ALL);"
        f"ALTER TABLE bench_copy ALTER owner_id SET DEFAULT '{uuid.UUID(owner_id)}',"
        " ADD FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE;"
    )
    script = (
        'start=$(date +%s%N); psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q'
        ' -c "\\copy bench_copy (sku, name, description, price, quantity)'
        " FROM '/tmp/bench.csv' WITH (FORMAT csv, HEADER true)\";"
        " end=$(date +%s%N); echo $(( (end - start) / 1000 ))"
    )
    micros = int(compose("exec", "-T", "db", "bash", "-c", script).strip())
    assert psql("SELECT count(*) FROM bench_copy") == str(rows)
    psql("DROP TABLE bench_copy")
    return rows / (micros / 1e6)


def one_row_latencies(client: Client, count: int) -> list[float]:
    """Milliseconds from submit to seen succeeded, one job at a time."""
    latencies = []
    for n in range(count):
        content = f"{HEADER}LAT-{n:05d},Latency {n},,1.00,1\n".encode()
        started = time.perf_counter()
        client.wait(client.upload(content), interval=0.002)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def jobs_per_s(client: Client, count: int, threads: int = 16) -> float:
    """Submit ``count`` 1-row imports concurrently; jobs per second until all
    succeeded."""
    before = client.succeeded()
    payloads = [f"{HEADER}TPUT-{n:05d},Throughput {n},,1.00,1\n".encode() for n in range(count)]
    started = time.perf_counter()
    client.upload_all(payloads, threads)
    while client.succeeded() - before < count:
        time.sleep(0.05)
    return count / (time.perf_counter() - started)


def drain_jobs_per_s(count: int, threads: int = 16) -> float:
    """The worker alone: ``count`` 1-row imports of a fresh user queued while
    the worker is paused, then jobs per second from its unpausing until all
    succeeded. Beside :func:`jobs_per_s`, which one user's submits bound
    (they take turns on the user's quota lock), it shows what the workers
    take."""
    client = Client()
    payloads = [f"{HEADER}DRAIN-{n:05d},Drain {n},,1.00,1\n".encode() for n in range(count)]
    compose("pause", "worker")
    try:
        client.upload_all(payloads, threads)
    finally:
        started = time.perf_counter()
        compose("unpause", "worker")
    while client.succeeded() < count:
        time.sleep(0.02)
    return count / (time.perf_counter() - started)


def server_ms(job: dict[str, Any]) -> float:
    """A job's submit-to-succeeded time by the server's clock (insert to
    recorded success), free of the client's polling."""
    created, done = (datetime.fromisoformat(job[k]) for k in ("created_at", "finished_at"))
    return (done - created).total_seconds() * 1000


def fairness(backlog: int, samples: int = 5) -> dict[str, float]:
    """User B's 1-row import, idle and behind user A's ``backlog`` queued
    1-row imports: medians of ``samples`` runs each, and their ratio.

    A's jobs are queued while the worker is paused: one user's submits take
    turns (its quota lock), and the worker takes 1-row imports faster than
    one user queues them, so no backlog would form otherwise."""
    a, b = Client(), Client()

    def b_ms() -> float:
        content = f"{HEADER}FAIR-{uuid.uuid4().hex[:8]},Fair,,1.00,1\n".encode()
        return server_ms(b.wait(b.upload(content), interval=0.005))

    idle = statistics.median(b_ms() for _ in range(samples))
    payloads = [f"{HEADER}BACK-{n:05d},Backlog,,1.00,1\n".encode() for n in range(backlog)]
    compose("pause", "worker")
    try:
        a.upload_all(payloads, threads=8)
    finally:
        compose("unpause", "worker")
    while not a.succeeded():
        time.sleep(0.01)
    behind = statistics.median(b_ms() for _ in range(samples))
    left = backlog - a.succeeded()
    while a.succeeded() < backlog:
        time.sleep(0.1)
    return {
        "fair_idle_p50_ms": round(idle, 1),
        "fair_behind_p50_ms": round(behind, 1),
        "fair_ratio": round(behind / idle, 2),
        "fair_backlog": backlog,
        "fair_backlog_left": left,
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--throughput-jobs", type=int, default=1000)
    parser.add_argument("--backlog-jobs", type=int, default=200)
    args = parser.parse_args()

    content = generate_csv(args.rows)
    imports, copies, server_seconds = [], [], []
    for _ in range(args.repeat):
        rate, job = import_rows_per_s(content, args.rows)
        imports.append(rate)
        started = datetime.fromisoformat(job["started_at"])
        finished = datetime.fromisoformat(job["finished_at"])
        server_seconds.append((finished - started).total_seconds())
        copies.append(copy_rows_per_s(content, args.rows, Client().id))

    client = Client()
    latencies = one_row_latencies(client, args.latency_jobs)
    throughput = jobs_per_s(client, args.throughput_jobs)
    drained = drain_jobs_per_s(args.throughput_jobs)
    fair = fairness(args.backlog_jobs)

    figures = {
        "import_rows": args.rows,
        "import_bytes": len(content),
        "import_rows_per_s": round(statistics.median(imports)),
        "import_worker_seconds": round(statistics.median(server_seconds), 3),
        "copy_rows_per_s": round(statistics.median(copies)),
        "ratio_import": round(statistics.median(imports) / statistics.median(copies), 3),
        "job_latency_p50_ms": round(percentile(latencies, 50), 1),
        "job_latency_p95_ms": round(percentile(latencies, 95), 1),
        "jobs_per_s": round(throughput, 1),
        "jobs_drain_per_s": round(drained, 1),
        **fair,
        "cores": os.cpu_count(),
    }
    rows = [
        ("CSV import, upload to succeeded", f"{figures['import_rows_per_s']:,} rows/s"),
        ("  of which the worker's run", f"{figures['import_worker_seconds']} s"),
        ("psql \\copy, same file and table shape", f"{figures['copy_rows_per_s']:,} rows/s"),
        ("import / \\copy", f"{figures['ratio_import']} (target >= 0.8)"),
        ("1-row import latency p50", f"{figures['job_latency_p50_ms']} ms (target <= 20)"),
        ("1-row import latency p95", f"{figures['job_latency_p95_ms']} ms (target <= 50)"),
        (
            f"throughput over {args.throughput_jobs} 1-row imports",
            f"{figures['jobs_per_s']} jobs/s (target >= 300)",
        ),
        (
            f"  the worker alone, {args.throughput_jobs} queued",
            f"{figures['jobs_drain_per_s']} jobs/s",
        ),
        (
            f"B's 1-row import, idle / behind A's {args.backlog_jobs} (p50)",
            f"{fair['fair_idle_p50_ms']} / {fair['fair_behind_p50_ms']} ms "
            f"({fair['fair_ratio']}x; target <= 2)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    size = f"{len(content) / 1e6:.1f} MB"
    print(f"\njobs benchmark: {args.rows:,} rows ({size}), median of {args.repeat};")
    print(f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}\n")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")

    figures["jobs_measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"\nwritten to {save(figures)}")


if __name__ == "__main__":
    main()
