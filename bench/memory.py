"""Memory of the stack while it handles maximum-size files (see ``bench/run.sh``):

1. the worker container during one 20 MiB import, run to its end;
2. the api container during 8 concurrent uploads of MAX_UPLOAD_BYTES (20 MiB),
   each by its own user (one user's uploads take turns on their quota lock),
   their jobs cancelled once all are uploaded.

Each container's memory is its cgroup's (``memory.current``, page cache
included), sampled every 50 ms inside the container, with the largest
resident set (RSS) of its processes; before (idle) and the highest during.
Prints a table and merges its figures into ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.jobs import API_URL, HEADER, Client
from bench.report import save

MIB = 1024 * 1024
# One line per sample: the cgroup's memory (v2, else v1) in bytes, then the
# largest VmRSS of the container's processes in kB.
_SAMPLER = r"""
f=/sys/fs/cgroup/memory.current
[ -r "$f" ] || f=/sys/fs/cgroup/memory/memory.usage_in_bytes
while :; do
  rss=0
  for s in /proc/[0-9]*/status; do
    r=$(sed -n "s/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p" "$s" 2>/dev/null)
    [ -n "$r" ] && [ "$r" -gt "$rss" ] && rss=$r
  done
  echo "$(cat $f) $rss"
  sleep 0.05
done
"""


class Sampler:
    """Samples one compose service's memory until stopped; MB (10^6 B)."""

    def __init__(self, service: str) -> None:
        self._process = subprocess.Popen(
            ["docker", "compose", "exec", "-T", service, "sh", "-c", _SAMPLER],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.samples: list[tuple[float, float]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            fields = line.split()
            if len(fields) == 2:
                self.samples.append((int(fields[0]) / 1e6, int(fields[1]) * 1024 / 1e6))

    def wait_for_samples(self, count: int = 5) -> None:
        deadline = time.monotonic() + 30
        while len(self.samples) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> tuple[float, float]:
        """The highest cgroup memory and largest process RSS seen, MB."""
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=5)
        return max(s[0] for s in self.samples), max(s[1] for s in self.samples)


def idle(service: str, seconds: float = 1.0) -> tuple[float, float]:
    """The service's memory while nothing runs: the median of a second of samples."""
    sampler = Sampler(service)
    time.sleep(seconds)
    sampler.wait_for_samples()
    sampler.stop()
    cgroup = sorted(s[0] for s in sampler.samples)
    rss = sorted(s[1] for s in sampler.samples)
    return cgroup[len(cgroup) // 2], rss[len(rss) // 2]


def maximum_csv(limit: int) -> bytes:
    """A valid item CSV of just under ``limit`` bytes, with non-ASCII names
    (stored by Python at 2 bytes a character)."""
    lines, size, n = [HEADER.encode()], len(HEADER), 0
    while True:
        line = f"MEM-{n:07d},Größe {n} für €{n % 997},,{n % 1000}.50,{n % 50}\n".encode()
        if size + len(line) > limit:
            return b"".join(lines)
        lines.append(line)
        size, n = size + len(line), n + 1


def api_during_uploads(content: bytes, uploads: int) -> dict[str, float]:
    """The api container while ``uploads`` users each upload ``content`` at once."""
    clients = [Client() for _ in range(uploads)]
    before, before_rss = idle("api")
    sampler = Sampler("api")
    sampler.wait_for_samples()
    with ThreadPoolExecutor(uploads) as pool:
        job_ids = list(pool.map(lambda client: client.upload(content, _http()), clients))
    peak, peak_rss = sampler.stop()
    for client, job_id in zip(clients, job_ids, strict=True):
        client.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=client.headers)
    return {
        "api_upload_idle_mb": round(before, 1),
        "api_upload_peak_mb": round(peak, 1),
        "api_upload_process_rss_idle_mb": round(before_rss, 1),
        "api_upload_process_rss_peak_mb": round(peak_rss, 1),
    }


def _http() -> httpx.Client:
    return httpx.Client(base_url=API_URL, timeout=300)


def worker_during_import(content: bytes) -> dict[str, Any]:
    """The worker container during one import of ``content``, to its end."""
    client = Client()
    before, before_rss = idle("worker")
    sampler = Sampler("worker")
    sampler.wait_for_samples()
    started = time.perf_counter()
    job = client.wait(client.upload(content), interval=0.1)
    elapsed = time.perf_counter() - started
    peak, peak_rss = sampler.stop()
    return {
        "worker_import_idle_mb": round(before, 1),
        "worker_import_peak_mb": round(peak, 1),
        "worker_import_process_rss_idle_mb": round(before_rss, 1),
        "worker_import_process_rss_peak_mb": round(peak_rss, 1),
        "worker_import_rows": job["counts"]["rows"],
        "worker_import_seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=20 * MIB, help="MAX_UPLOAD_BYTES")
    parser.add_argument("--uploads", type=int, default=8)
    args = parser.parse_args()

    content = maximum_csv(args.bytes)
    figures: dict[str, Any] = {"memory_file_bytes": len(content), "memory_uploads": args.uploads}
    figures.update(worker_during_import(content))
    figures.update(api_during_uploads(content, args.uploads))
    width = max(len(key) for key in figures)
    print(f"\nmemory benchmark: {len(content) / MIB:.1f} MiB file")
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")

    figures["memory_measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"\nwritten to {save(figures)}")


if __name__ == "__main__":
    main()
