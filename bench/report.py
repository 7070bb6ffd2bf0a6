"""Print ``bench/results/latest.json`` as one table, every figure with its
target (``make bench`` ends with it; ``python -m bench.report`` shows the last
results again). Figures of a part that was never run are left out."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"


def save(figures: dict[str, Any]) -> Path:
    """Merge ``figures`` into the results file, keeping every key they do not
    name (each part of the benchmark writes its own); the file's path."""
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return RESULTS


@dataclass(frozen=True)
class Row:
    """One figure: its key, how it is shown, and its target if it has one."""

    label: str
    key: str
    unit: str = ""
    target: tuple[str, float] | None = None  # (operator, bound)
    detail: str | None = None  # key of a {kind: count} shown after the figure

    def figure(self, value: Any, results: dict[str, Any]) -> str:
        if isinstance(value, bool):
            text = "yes" if value else "NO"
        elif isinstance(value, dict):
            # {service: CPU %}: the busy ones, busiest first.
            busy = sorted(value.items(), key=lambda pair: -pair[1])
            text = ", ".join(f"{name} {number:.0f}" for name, number in busy if number >= 1)
        else:
            text = f"{value:,}" if isinstance(value, int | float) else str(value)
        extra = results.get(self.detail or "")
        if extra:
            text += " (" + ", ".join(f"{kind} {count:,}" for kind, count in extra.items()) + ")"
        return f"{text} {self.unit}".rstrip()

    def verdict(self, value: Any) -> tuple[str, bool | None]:
        if self.target is None:
            return "", None
        op, bound = self.target
        shown = f"{op} {bound:g} {self.unit}".rstrip()
        return shown, OPERATORS[op](value, bound)


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
    "=": operator.eq,
}

SECTIONS: list[tuple[str, list[Row]]] = [
    (
        "API: GET /api/v1/items/{id}, authenticated",
        [
            Row("requests/s", "api_get_rps"),
            Row("latency p50", "api_get_p50_ms", "ms"),
            Row("latency p99", "api_get_p99_ms", "ms", ("<", 100)),
            Row(
                "errors (socket + non-2xx)",
                "api_get_errors",
                "",
                ("=", 0),
                "api_get_error_kinds",
            ),
            Row("CPU halfway, 100 = one core", "api_get_cpu_percent", "%"),
            Row("database connections opened during the run", "api_get_db_connections_opened"),
        ],
    ),
    (
        "ceiling: raw ASGI + asyncpg, same SELECT, same gunicorn settings",
        [
            Row("same JSON body as our endpoint", "ceiling_same_body"),
            Row("requests/s", "ceiling_get_rps"),
            Row("latency p50", "ceiling_get_p50_ms", "ms"),
            Row("latency p99", "ceiling_get_p99_ms", "ms"),
            Row("errors", "ceiling_get_errors", detail="ceiling_get_error_kinds"),
            Row("CPU halfway, 100 = one core", "ceiling_get_cpu_percent", "%"),
            Row("database connections opened during the run", "ceiling_get_db_connections_opened"),
            Row("our GET / ceiling", "ratio_get", "", (">=", 0.6)),
            Row("  each round (ceiling and api runs alternated)", "ratio_get_rounds"),
            Row("ceiling POST requests/s (the same statements)", "ceiling_post_rps"),
            Row("ceiling POST latency p99", "ceiling_post_p99_ms", "ms"),
            Row("our POST / ceiling POST", "ratio_post", "", (">=", 0.5)),
            Row("  each round (ceiling and api runs alternated)", "ratio_post_rounds"),
        ],
    ),
    (
        "API: the same GET at a fixed rate, half of wrk's (k6, open loop)",
        [
            Row("arrival rate, requests/s", "openloop_get_rate"),
            Row("requests", "openloop_get_requests"),
            Row("latency p50", "openloop_get_p50_ms", "ms"),
            Row("latency p99", "openloop_get_p99_ms", "ms", ("<", 50)),
            Row("latency p99.9", "openloop_get_p999_ms", "ms"),
            Row("failed or never sent", "openloop_get_errors", "", ("=", 0)),
            Row("  failed (status >= 400, timeout)", "openloop_get_failed"),
            Row("  never sent (no free virtual user)", "openloop_get_dropped"),
        ],
    ),
    (
        "API: the same GET with tracing on (OTLP/HTTP to a receiver in the stack)",
        [
            Row("requests/s", "traced_get_rps"),
            Row("latency p50", "traced_get_p50_ms", "ms"),
            Row("latency p99", "traced_get_p99_ms", "ms"),
            Row("errors", "traced_get_errors", detail="traced_get_error_kinds"),
            Row("CPU halfway, 100 = one core", "traced_get_cpu_percent", "%"),
            Row("requests/s lost to tracing, against tracing off", "traced_get_cost_percent", "%"),
        ],
    ),
    (
        "API: POST /api/v1/items, a new sku each time",
        [
            Row("requests/s", "api_post_rps"),
            Row("latency p50", "api_post_p50_ms", "ms"),
            Row("latency p99", "api_post_p99_ms", "ms", ("<", 100)),
            Row(
                "errors (socket + non-2xx)",
                "api_post_errors",
                "",
                ("=", 0),
                "api_post_error_kinds",
            ),
            Row("items stored (>= requests answered)", "api_post_created"),
            Row("CPU halfway, 100 = one core", "api_post_cpu_percent", "%"),
            Row("database connections opened during the run", "api_post_db_connections_opened"),
        ],
    ),
    (
        "stack",
        [
            Row("up -d --wait, fresh project, to all healthy", "up_seconds", "s", ("<", 15)),
            Row("image above its base (MB = 10^6 B)", "image_mb_above_base", "MB", ("<=", 100)),
            Row("api worker RSS after the load, max", "api_worker_rss_mb", "MB", ("<=", 90)),
            Row("api worker RSS after the load, mean", "api_worker_rss_mean_mb", "MB"),
            Row("api worker PSS (shared pages divided), max", "api_worker_pss_mb", "MB"),
            Row("api gunicorn workers", "api_workers"),
            Row("ceiling worker RSS, max", "ceiling_worker_rss_mb", "MB"),
        ],
    ),
    (
        "jobs",
        [
            Row("CSV import, upload to succeeded", "import_rows_per_s", "rows/s"),
            Row("  of which the worker's run", "import_worker_seconds", "s"),
            Row("psql \\copy, same file and table shape", "copy_rows_per_s", "rows/s"),
            Row("import / \\copy", "ratio_import", "", (">=", 0.8)),
            Row("1-row import latency p50", "job_latency_p50_ms", "ms", ("<=", 20)),
            Row("1-row import latency p95", "job_latency_p95_ms", "ms", ("<=", 50)),
            Row("1,000 1-row imports submitted at once", "jobs_per_s", "jobs/s", (">=", 300)),
            Row("  the worker alone: 1,000 queued, drained", "jobs_drain_per_s", "jobs/s"),
            Row("user B's 1-row import, idle p50", "fair_idle_p50_ms", "ms"),
            Row("  behind user A's 200 queued jobs, p50", "fair_behind_p50_ms", "ms"),
            Row("  behind / idle", "fair_ratio", "", ("<=", 2)),
        ],
    ),
    (
        "API: GET /api/v1/items, first page, 100,000 items of one user",
        [
            Row("items of the user", "lists_items"),
            Row("total shown", "lists_total_shown"),
            Row("  capped at ITEMS_TOTAL_CAP (total_capped)", "lists_total_capped"),
            Row("latency p50, without q", "lists_p50_ms", "ms", ("<=", 50)),
            Row("latency p95, without q", "lists_p95_ms", "ms"),
            Row("latency p50, with q", "lists_q_p50_ms", "ms", ("<=", 50)),
            Row("latency p95, with q", "lists_q_p95_ms", "ms"),
        ],
    ),
    (
        "memory with maximum-size (20 MiB) files, MB = 10^6 B",
        [
            Row("api container, idle", "api_upload_idle_mb", "MB"),
            Row("api container, peak during 8 concurrent uploads", "api_upload_peak_mb", "MB"),
            Row("  largest api process, peak", "api_upload_process_rss_peak_mb", "MB"),
            Row("worker container, idle", "worker_import_idle_mb", "MB"),
            Row("worker container, peak during one import", "worker_import_peak_mb", "MB"),
            Row("  largest worker process, peak", "worker_import_process_rss_peak_mb", "MB"),
            Row("  that import: rows", "worker_import_rows"),
            Row("  that import: upload to succeeded", "worker_import_seconds", "s"),
        ],
    ),
]


def render(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The table's lines, and the labels of the targets that were missed."""
    lines: list[str] = []
    missed: list[str] = []
    table: list[tuple[str, str, str, str]] = []
    for title, rows in SECTIONS:
        present = [row for row in rows if row.key in results]
        if not present:
            continue
        table.append((title, "", "", ""))
        for row in present:
            value = results[row.key]
            target, met = row.verdict(value)
            if met is False:
                missed.append(f"{row.key} = {value} ({target})")
            status = {True: "ok", False: "MISSED", None: ""}[met]
            table.append((f"  {row.label}", row.figure(value, results), target, status))
    widths = [max(len(cells[i]) for cells in table) for i in range(3)]
    header = ("", "figure", "target", "met")
    for cells in [header, *table]:
        if cells[1:] == ("", "", "") and cells is not header:
            lines.append(cells[0])
            continue
        lines.append(
            f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}  {cells[2]:<{widths[2]}}  "
            f"{cells[3]}".rstrip()
        )
    return lines, missed


def main() -> None:
    if not RESULTS.exists():
        raise SystemExit(f"no results yet: {RESULTS} (run make bench)")
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    lines, missed = render(results)
    print()
    print("appstack benchmarks")
    if "api_measured_at" in results:
        print(
            f"API: wrk, {results.get('wrk_connections')} connections,"
            f" {results.get('wrk_threads')} threads, {results.get('wrk_duration')} per run;"
            f" measured {results['api_measured_at']}"
        )
    if "jobs_measured_at" in results:
        rows = results.get("import_rows", 0)
        print(f"jobs: {rows:,}-row CSV import; measured {results['jobs_measured_at']}")
    if "lists_measured_at" in results:
        requests, at = results.get("lists_requests"), results["lists_measured_at"]
        print(f"items list: {requests} sequential requests each; measured {at}")
    print(f"{results.get('cores', '?')} cores; {results.get('machine', '')}".rstrip("; "))
    print()
    print("\n".join(lines))
    print()
    if missed:
        print(f"targets missed ({len(missed)}): " + "; ".join(missed))
    else:
        print("targets: all met")


if __name__ == "__main__":
    main()
