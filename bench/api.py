"""API benchmarks against the stack in compose (see ``bench/run.sh``).

1. ``up_seconds``: ``docker compose up -d --wait`` from built images on a fresh
   project (``down -v`` first), until every service is healthy; this includes
   the database's first start and the migrate one-shot.
2. wrk (``--latency``, default 64 connections, 2 threads, 30 s, after a short
   warm-up) against an authenticated ``GET /api/v1/items/{id}``, the same
   request against the ceiling (``bench/ceiling.py``: a raw ASGI app doing
   the same SELECT under the same gunicorn settings), and ``POST
   /api/v1/items`` with a new sku on every request (``bench/wrk/post.lua``),
   against our endpoint and the ceiling's (the same statements: owner's
   turn, quota count, INSERT). Ceiling and api runs alternate, ``--rounds``
   pairs (2) of each (ceiling, api, ceiling, api), so that the machine's noise
   falls on both sides: ``ratio_get`` and ``ratio_post`` are the api's
   requests/s over the ceiling's across the rounds, each round's ratio shown
   too (the database allows both pools at once: bench/compose.db.yml).
   wrk's figures come from the JSON its ``done()`` prints
   (``bench/wrk/report.lua``), with every response's status counted. For each
   run, also the containers' CPU halfway through and the database connections
   opened during it (a pool that keeps its connections opens none).
   Then the same GET with tracing on (``bench/compose.tracing.yml``: the api
   exports every request's spans to an OTLP receiver in the stack), and its
   cost against the tracing-off run above, in the same run; the api is put
   back without tracing afterwards.
3. After the load: RSS of every gunicorn worker (not the master) of the api
   and of the ceiling; the image's size above its base image.

Merges its figures into ``bench/results/latest.json``; ``bench/report.py``
prints them with their targets. MB are 10^6 bytes throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.openloop import open_loop
from bench.report import save

ROOT = Path(__file__).resolve().parent.parent
WRK = ROOT / "bench" / "wrk"
API_URL = os.environ.get("API_URL", "http://127.0.0.1:18100")
CEILING_URL = f"http://127.0.0.1:{os.environ.get('CEILING_PORT', '18101')}"
BASE = ("-f", "docker-compose.yml", "-f", "bench/compose.db.yml")
WITH_CEILING = (*BASE, "-f", "bench/compose.ceiling.yml")
TRACED = (*BASE, "-f", "bench/compose.tracing.yml")
MB = 1e6
ERROR_LINE = re.compile(r"Traceback|Error|ERROR|CRITICAL|\b5\d\d\b")

# Run inside a container: RSS of each gunicorn worker, that is each gunicorn
# process whose parent is a gunicorn process (the image has no ps). The
# process running this script is left out: its own command line says gunicorn.
RSS_SCRIPT = """
import json, os
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        status = dict(
            line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
        )
    except OSError:
        continue
    if b"gunicorn" in cmdline:
        # PSS: resident pages, each shared page divided among its sharers.
        pss = 0
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
        procs[pid] = (status["PPid"].strip(), int(status["VmRSS"].split()[0]) * 1024, pss)
print(json.dumps([[rss, pss] for ppid, rss, pss in procs.values() if ppid in procs]))
"""


def compose(files: tuple[str, ...], *args: str) -> str:
    """``docker compose`` on the benchmark's project with these compose files."""
    result = subprocess.run(
        ["docker", "compose", *files, *args], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def measure_up() -> float:
    """Seconds of ``up -d --wait`` on a fresh project (images already built)."""
    compose(WITH_CEILING, "down", "-v", "--remove-orphans")
    started = time.perf_counter()
    compose(BASE, "up", "-d", "--wait")
    return time.perf_counter() - started


@dataclass
class Target:
    """The user, token and item the load uses."""

    token: str
    owner_id: str
    item_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def seed() -> Target:
    """Register a user, log in, create one item."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    password = "benchmark password"
    with httpx.Client(base_url=API_URL, timeout=30) as http:
        http.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        ).raise_for_status()
        login = http.post("/api/v1/auth/login", data={"username": email, "password": password})
        login.raise_for_status()
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        owner_id = http.get("/api/v1/users/me", headers=headers).json()["id"]
        item = http.post(
            "/api/v1/items",
            json={"sku": "BENCH-1", "name": "Benchmark mug", "price": "4.50", "quantity": 10},
            headers=headers,
        )
        item.raise_for_status()
    return Target(token=token, owner_id=owner_id, item_id=item.json()["id"])


def same_body(target: Target) -> bool:
    """Whether the ceiling answers with exactly our endpoint's body."""
    ours = httpx.get(f"{API_URL}/api/v1/items/{target.item_id}", headers=target.auth)
    theirs = httpx.get(f"{CEILING_URL}/items/{target.item_id}", params={"owner": target.owner_id})
    ours.raise_for_status()
    theirs.raise_for_status()
    if ours.content != theirs.content:
        print(f"  WARNING: bodies differ\n    api:     {ours.text}\n    ceiling: {theirs.text}")
    return ours.content == theirs.content


def stored_by(target: Target, run_id: str) -> int:
    """How many items the wrk run ``run_id`` stored (their names contain it),
    counted in Postgres: the list's ``total`` stops at ITEMS_TOTAL_CAP."""
    # Both values are ours: a UUID from the API and a hex run id.
    where = f"owner_id = '{target.owner_id}' AND name LIKE '%{run_id}%'"
    return int(psql(f"SELECT count(*) FROM items WHERE {where}"))  # noqa: S608


@dataclass
class Load:
    """How wrk loads a target."""

    connections: int
    threads: int
    duration: str
    warmup: str
    timeout: str


@dataclass
class WrkRun:
    """wrk's figures for one run."""

    requests: int
    seconds: float
    errors: dict[str, int]
    statuses: dict[str, int]
    latency_us: dict[str, Any]
    cpu: dict[str, float]
    run_id: str
    db_connections_opened: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def error_kinds(self) -> dict[str, int]:
        """Socket errors (connect, read, write, timeout) and non-2xx answers,
        by kind (``"HTTP 500"``); the ones that occurred."""
        kinds = {kind: n for kind, n in self.errors.items() if kind != "status" and n}
        for status, n in sorted(self.statuses.items()):
            if not status.startswith("2"):
                kinds[f"HTTP {status}"] = n
        return kinds

    @property
    def error_count(self) -> int:
        return sum(self.error_kinds.values())

    def ms(self, percentile: str) -> float:
        return float(self.latency_us["percentiles"][percentile]) / 1000


def merge(runs: list[WrkRun]) -> WrkRun:
    """Several runs of one target as one: requests over their summed time,
    errors and statuses summed; the median of their p50s and the worst of
    their higher percentiles; the last run's CPU sample and run id."""
    percentiles: dict[str, float] = {}
    for key in runs[0].latency_us["percentiles"]:
        values = sorted(float(run.latency_us["percentiles"][key]) for run in runs)
        percentiles[key] = values[(len(values) - 1) // 2] if key == "50" else values[-1]

    def total(field: str) -> dict[str, int]:
        summed: dict[str, int] = {}
        for run in runs:
            for kind, n in getattr(run, field).items():
                summed[kind] = summed.get(kind, 0) + n
        return summed

    return WrkRun(
        requests=sum(run.requests for run in runs),
        seconds=sum(run.seconds for run in runs),
        errors=total("errors"),
        statuses=total("statuses"),
        latency_us={"percentiles": percentiles},
        cpu=runs[-1].cpu,
        run_id=runs[-1].run_id,
        db_connections_opened=sum(run.db_connections_opened for run in runs),
    )


def seconds(duration: str) -> float:
    """wrk's duration syntax (``30s``, ``2m``, ``1h``, or plain seconds)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if duration and duration[-1] in units:
        return float(duration[:-1]) * units[duration[-1]]
    return float(duration)


def cpu_by_service() -> dict[str, float]:
    """CPU % of each container of the project right now (100 = one core)."""
    project = os.environ.get("COMPOSE_PROJECT_NAME", "appstack-bench")
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    usage = {}
    for line in out.splitlines():
        name, _, percent = line.partition(" ")
        if name.startswith(f"{project}-"):
            service = name.removeprefix(f"{project}-").rsplit("-", 1)[0]
            usage[service] = float(percent.rstrip("%"))
    return usage


def wrk(
    url: str,
    load: Load,
    *,
    duration: str,
    script: str = "get.lua",
    headers: dict[str, str] | None = None,
    sample_cpu: bool = False,
) -> WrkRun:
    """One wrk run; its figures from the JSON line of ``report.lua``'s done().
    The script gets a new run id (``post.lua`` starts its skus with it, so a
    run never repeats the warm-up's). With ``sample_cpu``, the containers'
    CPU use is sampled halfway through."""
    run_id = f"r{uuid.uuid4().hex[:8]}"
    command = [
        "wrk",
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={duration}",
        # wrk leaves a response slower than the timeout out of the latency
        # distribution and counts it as an error: a timeout well above any
        # plausible latency keeps slow answers in p99 where they belong.
        f"--timeout={load.timeout}",
        "--latency",
        f"--script={WRK / script}",
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    command += [url, "--", run_id]
    cpu: dict[str, float] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        if sample_cpu:
            time.sleep(seconds(duration) / 2)
            cpu = cpu_by_service()
        stdout, stderr = p.communicate()
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            return WrkRun(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                errors=data["errors"],
                statuses=data["statuses"],
                latency_us=data["latency_us"],
                cpu=cpu,
                run_id=run_id,
            )
    raise RuntimeError(f"wrk printed no figures (exit {p.returncode}):\n{stderr}")


def db_sessions() -> int:
    """Connections Postgres has accepted so far (``pg_stat_database.sessions``),
    counting the one this query opens."""
    return int(psql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))


def psql(sql: str) -> str:
    """One SQL statement in the benchmark's db container; psql's unaligned output."""
    script = f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{sql}"'
    return compose(WITH_CEILING, "exec", "-T", "db", "sh", "-c", script).strip()


def measure(name: str, url: str, load: Load, service: str = "", **kwargs: Any) -> WrkRun:
    """A warm-up (opens the pools, fills the statement caches), then the run.
    When there were errors, shows what ``service`` logged about them."""
    if load.warmup not in {"", "0", "0s"}:
        wrk(url, load, duration=load.warmup, **kwargs)
    since = datetime.now(UTC).isoformat(timespec="seconds")
    sessions = db_sessions()
    run = wrk(url, load, duration=load.duration, sample_cpu=True, **kwargs)
    # A pool that keeps its connections opens none once warm; one that closes
    # and reopens them (an overflow beyond its size) shows here.
    run.db_connections_opened = db_sessions() - sessions - 1
    errors = run.error_kinds
    cpu = ", ".join(f"{container} {percent:.0f}%" for container, percent in run.cpu.items())
    print(
        f"  {name:<24} {run.rps:>6.0f} req/s  p50 {run.ms('50'):6.1f} ms"
        f"  p99 {run.ms('99'):6.1f} ms  errors {run.error_count} {errors or ''}".rstrip()
    )
    print(f"  {'':<24} CPU halfway: {cpu}; new database connections: {run.db_connections_opened}")
    if errors and service:
        # What the service logged about them (tracebacks, error lines).
        logs = compose(WITH_CEILING, "logs", "--no-color", "--since", since, service)
        lines = [line for line in logs.splitlines() if ERROR_LINE.search(line)]
        for line in lines[:10]:
            print(f"  {'':<24} {service} log: {line[:200]}")
    return run


def measure_traced(target: Target, load: Load) -> WrkRun:
    """The GET with tracing on; the api is put back as it was afterwards."""
    compose(TRACED, "up", "-d", "--wait", "otlp", "api")
    try:
        return measure(
            "GET, tracing on",
            f"{API_URL}/api/v1/items/{target.item_id}",
            load,
            service="api",
            headers=target.auth,
        )
    finally:
        compose(TRACED, "rm", "--stop", "--force", "otlp")
        compose(BASE, "up", "-d", "--wait", "api")


def worker_rss_mb(files: tuple[str, ...], service: str) -> list[float]:
    """RSS of each gunicorn worker of ``service``, in MB."""
    return [rss for rss, _ in worker_memory_mb(files, service)]


def worker_memory_mb(files: tuple[str, ...], service: str) -> list[tuple[float, float]]:
    """RSS and PSS of each gunicorn worker of ``service``, in MB."""
    out = compose(files, "exec", "-T", service, "python", "-c", RSS_SCRIPT)
    sizes: list[list[int]] = json.loads(out)
    return [(rss / MB, pss / MB) for rss, pss in sizes]


def image_size(image: str) -> int:
    """Size of a local image, in bytes, as ``docker image inspect`` gives it."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


def machine() -> str:
    """CPU model, architecture, kernel and Docker engine, for the record."""
    model = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return ", ".join(
        part
        for part in (
            model,
            platform.machine(),
            f"{platform.system()} {platform.release()}",
            f"Docker {engine}" if engine else "",
        )
        if part
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("-d", "--duration", default=env("BENCH_DURATION", "30s"))
    parser.add_argument("-c", "--connections", type=int, default=env("BENCH_CONNECTIONS", "64"))
    parser.add_argument("-t", "--threads", type=int, default=env("BENCH_THREADS", "2"))
    parser.add_argument(
        "--warmup", default=env("BENCH_WARMUP", "5s"), help="wrk run before each one (0: none)"
    )
    parser.add_argument(
        "--timeout", default=env("BENCH_TIMEOUT", "10s"), help="wrk's per-request timeout"
    )
    parser.add_argument(
        "--no-up", action="store_true", help="use the running stack: skip up_seconds"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(env("BENCH_ROUNDS", "2")),
        help="ceiling/api pairs of runs, alternated, per ratio",
    )
    args = parser.parse_args()
    load = Load(args.connections, args.threads, args.duration, args.warmup, args.timeout)
    figures: dict[str, Any] = {}

    if not args.no_up:
        up = measure_up()
        figures["up_seconds"] = round(up, 1)
        print(f"  up -d --wait on a fresh project: {up:.1f} s")
    compose(WITH_CEILING, "up", "-d", "--wait", "ceiling")

    target = seed()
    figures["ceiling_same_body"] = same_body(target)
    print(
        f"wrk: {load.connections} connections, {load.threads} threads, {load.duration} each"
        f" (after {load.warmup} of warm-up)"
    )
    # Ceiling and api alternate (ceiling, api, ceiling, api, ...), so that the
    # machine's noise hits both sides of each ratio alike; each round's POSTs
    # start from new owners with one item (a create counts its owner's items).
    gets: list[tuple[WrkRun, WrkRun]] = []
    for n in range(1, args.rounds + 1):
        ceiling_run = measure(
            f"ceiling GET /items/{{id}} #{n}",
            f"{CEILING_URL}/items/{target.item_id}?owner={target.owner_id}",
            load,
            service="ceiling",
        )
        api_run = measure(
            f"GET /api/v1/items/{{id}} #{n}",
            f"{API_URL}/api/v1/items/{target.item_id}",
            load,
            service="api",
            headers=target.auth,
        )
        gets.append((ceiling_run, api_run))
    ceiling, get = (merge([pair[side] for pair in gets]) for side in (0, 1))
    # Tail latency without coordinated omission: the same GET at a fixed
    # arrival rate, half of what wrk just measured (bench/openloop.py).
    rate = max(1, round(get.rps / 2))
    steady = open_loop(
        f"{API_URL}/api/v1/items/{target.item_id}", target.token, rate=rate, duration=load.duration
    )
    print(
        f"  open loop (k6) at {rate} GET/s: p50 {steady.p50_ms} ms, p99 {steady.p99_ms} ms, "
        f"p99.9 {steady.p999_ms} ms; of {steady.requests}: {steady.failed} failed, "
        f"{steady.dropped} never sent (no free virtual user)"
    )
    posts: list[tuple[WrkRun, WrkRun]] = []
    created = 0
    for n in range(1, args.rounds + 1):
        ceiling_run = measure(
            f"ceiling POST /items #{n}",
            f"{CEILING_URL}/items?owner={seed().owner_id}",
            load,
            service="ceiling",
            script="post.lua",
        )
        poster = seed()
        api_run = measure(
            f"POST /api/v1/items #{n}",
            f"{API_URL}/api/v1/items",
            load,
            service="api",
            script="post.lua",
            headers=poster.auth,
        )
        posts.append((ceiling_run, api_run))
        # wrk counts only the responses it received before the end; requests
        # still in flight then may have been stored too: created can be more.
        stored = stored_by(poster, api_run.run_id)
        answered = sum(count for status, count in api_run.statuses.items() if status[0] == "2")
        if stored < answered:
            print(f"  WARNING: {answered} POSTs answered 2xx but only {stored} items stored")
        created += stored
    ceiling_post, post = (merge([pair[side] for pair in posts]) for side in (0, 1))
    ceiling_rss = worker_rss_mb(WITH_CEILING, "ceiling")
    compose(WITH_CEILING, "rm", "--stop", "--force", "ceiling")

    ratios_get = [round(a.rps / c.rps, 3) for c, a in gets]
    ratios_post = [round(a.rps / c.rps, 3) for c, a in posts]
    print(
        f"  ratio to the ceiling: GET {get.rps / ceiling.rps:.3f} (rounds {ratios_get}),"
        f" POST {post.rps / ceiling_post.rps:.3f} (rounds {ratios_post})"
    )
    api_memory = worker_memory_mb(BASE, "api")
    api_rss = [rss for rss, _ in api_memory]
    api_pss = [pss for _, pss in api_memory]
    traced = measure_traced(target, load)
    cost = 100 * (1 - traced.rps / get.rps)
    print(f"  tracing on costs the GET {cost:.0f}% of its requests/s")

    app_image = os.environ.get("APP_IMAGE", "appstack:bench")
    base_image = os.environ.get("PYTHON_IMAGE", "python:3.13-slim")
    above = (image_size(app_image) - image_size(base_image)) / MB

    runs = (
        ("api_get", get),
        ("ceiling_get", ceiling),
        ("api_post", post),
        ("ceiling_post", ceiling_post),
        ("traced_get", traced),
    )
    for prefix, run in runs:
        figures |= {
            f"{prefix}_rps": round(run.rps),
            f"{prefix}_p50_ms": round(run.ms("50"), 1),
            f"{prefix}_p99_ms": round(run.ms("99"), 1),
            f"{prefix}_errors": run.error_count,
            f"{prefix}_requests": run.requests,
            f"{prefix}_error_kinds": run.error_kinds,
            f"{prefix}_cpu_percent": run.cpu,
            f"{prefix}_db_connections_opened": run.db_connections_opened,
        }
    figures |= {
        "api_post_created": created,
        "ratio_get": round(get.rps / ceiling.rps, 3),
        "openloop_get_rate": steady.rate,
        "openloop_get_requests": steady.requests,
        "openloop_get_p50_ms": steady.p50_ms,
        "openloop_get_p99_ms": steady.p99_ms,
        "openloop_get_p999_ms": steady.p999_ms,
        "openloop_get_max_ms": steady.max_ms,
        "openloop_get_errors": steady.errors,
        "openloop_get_failed": steady.failed,
        "openloop_get_dropped": steady.dropped,
        "ratio_post": round(post.rps / ceiling_post.rps, 3),
        "ratio_get_rounds": ratios_get,
        "ratio_post_rounds": ratios_post,
        "bench_rounds": args.rounds,
        "traced_get_cost_percent": round(cost, 1),
        "image_mb_above_base": round(above, 1),
        "image": app_image,
        "base_image": base_image,
        "api_worker_rss_mb": round(max(api_rss), 1),
        "api_worker_rss_mean_mb": round(sum(api_rss) / len(api_rss), 1),
        "api_worker_pss_mb": round(max(api_pss), 1),
        "api_workers": len(api_rss),
        "ceiling_worker_rss_mb": round(max(ceiling_rss), 1),
        "wrk_connections": load.connections,
        "wrk_threads": load.threads,
        "wrk_duration": load.duration,
        "wrk_timeout": load.timeout,
        "cores": os.cpu_count(),
        "machine": machine(),
        "api_measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"  api workers' RSS: max {figures['api_worker_rss_mb']} MB, mean"
        f" {figures['api_worker_rss_mean_mb']} MB ({len(api_rss)} workers);"
        f" image {figures['image_mb_above_base']} MB above {base_image}"
    )

    print(f"written to {save(figures).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
