"""Effective CPU detection from cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cpu import cgroup_cpu_limit, effective_cpus, gunicorn_workers


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
