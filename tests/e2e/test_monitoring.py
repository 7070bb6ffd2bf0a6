"""The monitoring profile's Prometheus on the running stack: every target up,
and every PromQL expression of the Grafana dashboards and the alert rules
answers without error once the stack has served some traffic, with data in
the main panels.

``tests/run.sh`` starts Prometheus with the stack and exports PROMETHEUS_URL.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import wait_for

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "")
# Grafana's variables, as it would fill them for a short time range.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "10s", "$__range": "5m"}
# Panels that must show data once requests were served and jobs ran.
MAIN_PANELS = {
    "api.json": [
        "Request rate by route",
        "Error ratio (5xx)",
        "Latency percentiles by route",
        "Requests in flight",
        "Readiness checks",
        "Database pool: connections in use",
        "Database pool: wait for a connection",
    ],
    "jobs.json": [
        "Queue depth",
        "Workers consuming",
        "Throughput by kind",
        "Duration percentiles by kind",
        "Seconds since the last relay pass",
        "Scheduler leading",
        "Worker database pool in use",
    ],
}
ONE_ROW = b"sku,name,price,quantity\nmon-1,Monitored,1.00,1\n"

pytestmark = pytest.mark.skipif(not PROMETHEUS_URL, reason="PROMETHEUS_URL is not set")


@pytest.fixture(scope="module")
def prometheus() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=PROMETHEUS_URL, timeout=10) as client:
        yield client


def panels(name: str) -> list[dict[str, Any]]:
    """Every panel of a dashboard file, those inside rows too."""
    found: list[dict[str, Any]] = []
    stack = list(json.loads((MONITORING / "grafana" / "dashboards" / name).read_text())["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.append(panel)
    return found


def concrete(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr.replace("$labels", "").replace("$value", ""), expr
    return expr


def expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboards and the rules, by where it is."""
    found: dict[str, str] = {}
    for name in MAIN_PANELS:
        for panel in panels(name):
            for target in panel.get("targets", []):
                found[f"{name}: {panel['title']} {target['refId']}"] = concrete(target["expr"])
    for path in sorted((MONITORING / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[f"{path.name}: {rule['alert']}"] = rule["expr"]
    return found


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.get("/api/v1/query", params={"query": expr})
    body = answer.json()
    assert answer.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def test_every_target_is_up(prometheus: httpx.Client) -> None:
    def targets() -> list[dict[str, Any]] | None:
        active: list[dict[str, Any]] = prometheus.get("/api/v1/targets").json()["data"][
            "activeTargets"
        ]
        jobs = {target["labels"]["job"] for target in active}
        healthy = all(target["health"] == "up" for target in active)
        return active if healthy and {"api", "worker", "prometheus"} <= jobs else None

    active = wait_for(targets, timeout=90, interval=2, what="every Prometheus target up")
    assert all(target["health"] == "up" for target in active), active


def send_traffic(api: httpx.Client, headers: dict[str, str]) -> None:
    """A few requests, and one small import run to the end."""
    for _ in range(5):
        assert api.get("/api/v1/items", headers=headers).status_code == 200
    assert (
        api.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000", headers=headers).status_code
        == 404
    )
    created = api.post(
        "/api/v1/items/import", files={"file": ("one.csv", ONE_ROW, "text/csv")}, headers=headers
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"] == "succeeded",
        timeout=60,
        what=f"import {job_id} to succeed",
    )


def test_dashboards_and_rules_answer_after_traffic(
    prometheus: httpx.Client, api: httpx.Client, auth_headers: dict[str, str]
) -> None:
    main = {
        f"{name}: {panel['title']}": [concrete(t["expr"]) for t in panel["targets"]]
        for name, titles in MAIN_PANELS.items()
        for panel in panels(name)
        if panel["title"] in titles
    }
    assert len(main) == sum(len(titles) for titles in MAIN_PANELS.values()), sorted(main)

    def empty_panels() -> list[str]:
        # Traffic on every pass: a rate needs an increase inside its window,
        # seen by two scrapes (one import's duration series is new at first).
        send_traffic(api, auth_headers)
        return [
            title
            for title, exprs in main.items()
            if not any(has_numbers(query(prometheus, expr)) for expr in exprs)
        ]

    last: list[str] = []

    def all_have_data() -> bool:
        nonlocal last
        last = empty_panels()
        return not last

    try:
        wait_for(all_have_data, timeout=150, interval=5, what="data in the main panels")
    except AssertionError:
        pytest.fail(f"main panels without data: {last}")

    exprs = expressions()
    assert len(exprs) > 30
    for where, expr in exprs.items():
        try:
            query(prometheus, expr)
        except AssertionError as exc:
            pytest.fail(f"{where}: {exc}")
