"""The production file's Prometheus (monitoring profile) finds and scrapes
every replica: the api's with METRICS_TOKEN (which the api demands in
production), the workers', and itself. Runs last: it adds a container."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import compose, wait_for
from tests.prod.conftest import env_value

PROMETHEUS_URL = f"http://127.0.0.1:{env_value('PROMETHEUS_PORT')}"


@pytest.fixture(scope="module")
def prometheus() -> Iterator[httpx.Client]:
    compose("--profile", "monitoring", "up", "-d", "--wait", "prometheus", timeout=300)
    try:
        with httpx.Client(base_url=PROMETHEUS_URL, timeout=10) as client:
            yield client
    finally:
        compose("--profile", "monitoring", "rm", "-s", "-f", "prometheus")


def test_prometheus_scrapes_every_replica(prometheus: httpx.Client) -> None:
    expected = {
        "api": int(env_value("API_REPLICAS")),
        "worker": int(env_value("WORKER_REPLICAS")),
        "prometheus": 1,
    }

    def all_up() -> list[dict[str, Any]] | None:
        found = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        targets: list[dict[str, Any]] = found
        up = Counter(t["labels"]["job"] for t in targets if t["health"] == "up")
        every = len(targets) == sum(expected.values())
        return targets if dict(up) == expected and every else None

    targets = wait_for(all_up, timeout=120, interval=2, what=f"targets {expected} all up")
    api = [t for t in targets if t["labels"]["job"] == "api"]
    assert all(t["lastError"] == "" for t in api)  # the token was accepted
    # The api's own series, from every replica.
    up = prometheus.get("/api/v1/query", params={"query": "count(up{job='api'} == 1)"}).json()
    assert up["data"]["result"][0]["value"][1] == str(expected["api"])
