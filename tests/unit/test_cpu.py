"""Effective CPU detection from cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cpu import (
    cgroup_cpu_limit,
    cgroup_memory_limit,
    effective_cpus,
    gunicorn_workers,
    upload_memory_warning,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "max 100000"}, None),
        ({"cpu.max": "100000 100000"}, 1.0),
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "50000 100000"}, 0.5),
        ({"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"}, None),
        ({"cpu.cfs_quota_us": "100000", "cpu.cfs_period_us": "100000"}, 1.0),
        ({"cpu.cfs_quota_us": "250000", "cpu.cfs_period_us": "100000"}, 2.5),
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            2.0,
        ),
        ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),
        ({}, None),
        ({"cpu.max": "garbage"}, None),
        ({"cpu.cfs_quota_us": "x", "cpu.cfs_period_us": "100000"}, None),
    ],
    ids=[
        "v2-unlimited",
        "v2-one",
        "v2-fractional",
        "v2-half",
        "v1-unlimited",
        "v1-one",
        "v1-fractional",
        "v1-cpu,cpuacct-dir",
        "v1-cpu-dir",
        "no-cgroup",
        "v2-garbage",
        "v1-garbage",
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], limit: float | None) -> None:
    assert cgroup_cpu_limit(write(tmp_path, files)) == limit


@pytest.mark.parametrize(
    ("files", "affinity", "expected"),
    [
        ({"cpu.max": "max 100000"}, 2, 2),
        ({"cpu.max": "100000 100000"}, 2, 1),
        ({"cpu.max": "150000 100000"}, 4, 2),  # 1.5 CPUs round up to 2
        ({"cpu.max": "50000 100000"}, 8, 1),
        ({"cpu.max": "800000 100000"}, 2, 2),  # a quota above the affinity mask
        ({"cpu.cfs_quota_us": "100000", "cpu.cfs_period_us": "100000"}, 2, 1),
        ({}, 3, 3),
    ],
)
def test_effective_cpus(
    tmp_path: Path, files: dict[str, str], affinity: int, expected: int
) -> None:
    assert effective_cpus(write(tmp_path, files), affinity=affinity) == expected


def test_workers_from_cpus_unless_web_concurrency() -> None:
    assert gunicorn_workers(None, 1) == 3
    assert gunicorn_workers(None, 2) == 5
    assert gunicorn_workers(2, 8) == 2


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"memory.max": "536870912\n"}, 512 * 1024 * 1024),
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "268435456"}, 256 * 1024 * 1024),
        ({"memory/memory.limit_in_bytes": "9223372036854771712"}, None),
        ({}, None),
    ],
    ids=["v2", "v2-unlimited", "v1", "v1-unlimited", "none"],
)
def test_cgroup_memory_limit(tmp_path: Path, files: dict[str, str], limit: int | None) -> None:
    assert cgroup_memory_limit(write(tmp_path, files)) == limit


def test_uploads_that_could_fill_the_memory_limit_are_warned_about() -> None:
    mib = 1024 * 1024
    # The production defaults: 5 processes x 2 slots x 20 MiB = 200 MiB.
    fits = {"processes": 5, "slots": 2, "max_bytes": 20 * mib}
    assert upload_memory_warning(**fits, limit=1024 * mib) is None
    assert upload_memory_warning(**fits, limit=None) is None
    warning = upload_memory_warning(**fits, limit=256 * mib)
    assert warning is not None
    assert "200 MiB" in warning
    assert "UPLOADS_PER_PROCESS=2" in warning
    assert "256 MiB" in warning
