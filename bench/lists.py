"""The items list at the quota, against the running stack (see ``bench/run.sh``).

One user gets ``--items`` items (100,000: MAX_ITEMS_PER_USER's default),
written straight into Postgres with one INSERT (as fast as a seed gets), in
one transaction, so that they share one ``created_at`` as an import's rows
do; another user gets as many, so that the list has others' rows to skip.
Then ``VACUUM ANALYZE items``, as autovacuum does after a bulk write. Then
``--requests`` sequential ``GET /api/v1/items`` of the first page (50 items,
the default sort) without ``q``, and as many with ``q``, cycling through
searches from rare to common, each after a few unmeasured ones. Latency is
the client's, over one keep-alive connection.

Prints the figures and merges them into ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.jobs import Client, percentile, psql
from bench.report import save

# Names as bench/jobs.py's CSV has them: "<Word> <word> <n>".
_SEED = """
INSERT INTO items (owner_id, sku, name, price, quantity)
SELECT '{owner_id}', 'SKU-' || lpad(g::text, 7, '0'),
       initcap(w[1 + g % 10]) || ' ' || w[1 + g / 10 % 10] || ' ' || g,
       (g % 100000) / 100.0, g % 1000
FROM generate_series(1, {count}) AS g,
     (SELECT ARRAY['red', 'blue', 'steel', 'oak', 'mug',
                   'lamp', 'chair', 'desk', 'plate', 'bowl']) AS words(w)
"""
# Rare (about 20 rows), selective (about 100), common (about 20 %), and
# one a trigram index cannot serve (two characters; about 20 %).
SEARCHES = ["9999", "lamp desk 1", "chair", "ed"]


def timed(http: httpx.Client, headers: dict[str, str], params: dict[str, Any]) -> float:
    """One request's latency in ms; the answer must be a 200."""
    started = time.perf_counter()
    response = http.get("/api/v1/items", params=params, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def measure(client: Client, requests: int, searches: list[str | None]) -> list[float]:
    """Latencies of ``requests`` GETs cycling through ``searches``, after
    one unmeasured round of each."""
    params = [{"limit": 50} | ({"q": q} if q else {}) for q in searches]
    for each in params * 3:
        timed(client.http, client.headers, each)
    return [timed(client.http, client.headers, params[n % len(params)]) for n in range(requests)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    client = Client()
    other = Client()
    seeded = time.perf_counter()
    for owner in (client, other):
        psql(_SEED.format(owner_id=owner.id, count=args.items))
    psql("VACUUM ANALYZE items")
    seed_seconds = time.perf_counter() - seeded
    first = client.http.get("/api/v1/items", params={"limit": 50}, headers=client.headers).json()

    plain = measure(client, args.requests, [None])
    searched = measure(client, args.requests, list(SEARCHES))
    figures = {
        "lists_items": args.items,
        "lists_requests": args.requests,
        "lists_total_shown": first["total"],
        "lists_total_capped": first.get("total_capped"),
        "lists_p50_ms": round(percentile(plain, 50), 1),
        "lists_p95_ms": round(percentile(plain, 95), 1),
        "lists_q_p50_ms": round(percentile(searched, 50), 1),
        "lists_q_p95_ms": round(percentile(searched, 95), 1),
    }
    print(
        f"\nlists benchmark: {args.items:,} items of one user (+ {args.items:,} of another),"
        f" seeded in {seed_seconds:.1f} s; {args.requests} sequential requests each;"
    )
    print(f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}\n")
    print(f"  total shown: {first['total']:,} (capped: {first.get('total_capped')})")
    for label, key in (("without q", "lists"), (f"with q in {SEARCHES}", "lists_q")):
        p50, p95 = figures[f"{key}_p50_ms"], figures[f"{key}_p95_ms"]
        verdict = "met" if isinstance(p50, float) and p50 <= 50 else "MISSED"
        print(f"  GET /api/v1/items {label}: p50 {p50} ms ({verdict}: <= 50), p95 {p95} ms")

    figures["lists_measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"\nwritten to {save(figures)}")


if __name__ == "__main__":
    main()
