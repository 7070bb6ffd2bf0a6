"""gunicorn sizes its workers from the container's CPU quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import compose

HERE = Path(__file__).parent
SCRIPT = (HERE / "count_workers.py").read_text()


def count_workers(*extra: str, overlay: bool) -> int:
    files = ["-f", "docker-compose.yml"] + (["-f", str(HERE / "cpus-1.yml")] if overlay else [])
    done = compose(
        *files,
        "run",
        "--rm",
        "--no-deps",
        "-T",
        *extra,
        "api",
        "python",
        "-",
        check=False,
        timeout=120,
        input_text=SCRIPT,
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("workers=")]
    assert line, done.stdout
    return int(line[-1].removeprefix("workers="))


@pytest.mark.parametrize(
    ("extra", "overlay", "expected"),
    [
        ((), True, 3),  # one CPU of quota on a two-core machine: 2 x 1 + 1
        (("-e", "WEB_CONCURRENCY=2"), False, 2),
    ],
    ids=["cpus-1", "web-concurrency-2"],
)
def test_worker_count(extra: tuple[str, ...], overlay: bool, expected: int) -> None:
    assert count_workers(*extra, overlay=overlay) == expected
