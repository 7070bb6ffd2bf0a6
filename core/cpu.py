"""How many CPUs this process may really use.

Inside a container with a CPU limit, ``os.cpu_count()`` and the affinity mask
still report every core of the host; the limit lives in the cgroup's CFS quota.
The effective count is ``min(affinity, ceil(quota / period))``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (possibly fractional), or ``None`` when unlimited.

    Reads cgroup v2 ``cpu.max`` ("<quota> <period>" or "max <period>") first,
    then cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1 means
    unlimited), under ``root`` or its ``cpu`` / ``cpu,cpuacct`` controller dirs.
    """
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            return _ratio(fields[0], fields[1])
        return None
    for controller in ("", "cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / controller if controller else root
        quota = _read(base / "cpu.cfs_quota_us")
        period = _read(base / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return q / p


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (falls back to ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def effective_cpus(root: Path = CGROUP_ROOT, affinity: int | None = None) -> int:
    """``min(affinity, ceil(cgroup quota))``, at least 1."""
    cpus = affinity if affinity is not None else affinity_cpus()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def gunicorn_workers(web_concurrency: int | None, cpus: int) -> int:
    """``WEB_CONCURRENCY`` when set, else the usual ``2 * cpus + 1``."""
    if web_concurrency is not None:
        return web_concurrency
    return 2 * cpus + 1


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The container's memory limit in bytes (cgroup v2 ``memory.max``, then
    v1 ``memory.limit_in_bytes``), or ``None`` when unlimited or unknown."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        value = _read(path)
        if value is None:
            continue
        # v1 reports "no limit" as a huge number rounded to the page size.
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
        return None
    return None


def upload_memory_warning(
    *, processes: int, slots: int, max_bytes: int, limit: int | None
) -> str | None:
    """A warning when every API process reading ``slots`` uploads of
    ``max_bytes`` at once (each held in one buffer) could take more than half
    of the container's memory ``limit``; ``None`` when it fits or there is no
    limit. The rest is for the processes themselves and the page cache."""
    worst = processes * slots * max_bytes
    if limit is None or worst <= limit // 2:
        return None
    mib = 1024 * 1024
    return (
        f"uploads could hold {worst // mib} MiB at once ({processes} processes x "
        f"UPLOADS_PER_PROCESS={slots} x MAX_UPLOAD_BYTES={max_bytes // mib} MiB), more than "
        f"half of the container's memory limit ({limit // mib} MiB): lower one of them, "
        "or raise the limit"
    )
