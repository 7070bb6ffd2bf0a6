"""The monitoring profile's files (deploy/monitoring, the compose services):
structure only. promtool checks the Prometheus side for real
(deploy/monitoring/check.sh) and tests/e2e/test_monitoring.py runs every
expression against a live Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
GRAFANA = MONITORING / "grafana"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
SEVERITIES = {"warning", "critical"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((MONITORING / "rules").glob("*.yml"))
        for group in load(path)["groups"]
        for rule in group["rules"]
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.append(panel)
    return found


def test_prometheus_scrapes_every_replica_of_api_and_worker_and_itself() -> None:
    config = load(MONITORING / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "api", "worker"}
    assert jobs["api"]["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    # WORKER_METRICS_PORT's default.
    assert jobs["worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["worker"]["dns_sd_configs"][0]["port"] == 9808
    # The token comes from a file written at start, never from the config.
    assert jobs["api"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/tmp/metrics-token",  # noqa: S108
    }
    assert "credentials:" not in (MONITORING / "prometheus.yml").read_text()
    assert config["rule_files"] == ["rules/*.yml"]


def test_every_rule_has_a_duration_a_severity_and_a_runbook() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), names
    docs = (ROOT / "docs" / "monitoring.md").read_text()
    for rule in found:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in SEVERITIES, rule
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule
        # The runbook names this alert's section of docs/monitoring.md.
        anchor = rule["alert"].lower()
        assert annotations["runbook"].startswith(f"docs/monitoring.md#{anchor}:"), rule
        assert f"### {rule['alert']}" in docs, rule["alert"]


def test_every_rule_has_unit_tests_that_fire_and_stay_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in sorted((MONITORING / "tests").glob("*_test.yml")):
        spec = load(path)
        for rule_file in spec["rule_files"]:
            assert (path.parent / rule_file).is_file(), rule_file
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "rules never tested firing"
    assert names - quiet == set(), "rules never tested quiet"


def test_the_rules_and_dashboards_read_metrics_the_app_exports() -> None:
    from prometheus_client import REGISTRY

    import api.main  # noqa: F401  (registers every api metric)
    import core.db_metrics
    import core.jobs.metrics  # noqa: F401

    exported = {family.name for family in REGISTRY.collect()}
    # Collected by the worker's main process at scrape time (worker/metrics.py).
    worker_source = (ROOT / "worker" / "metrics.py").read_text()
    exported |= {
        name
        for name in ("appstack_worker_consuming", "appstack_scheduler_leader")
        if f'"{name}"' in worker_source
    }
    exprs = [rule["expr"] for rule in rules()] + [
        target["expr"]
        for dashboard in dashboards().values()
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    used = {
        re.sub(r"_(bucket|total|sum|count)$", "", name)
        for expr in exprs
        for name in re.findall(r"\bappstack_\w+", expr)
    }
    assert used - exported == set()
    assert "appstack_db_pool_checked_out" in used


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    sources = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert [(s["uid"], s["type"], s["url"]) for s in sources] == [
        ("appstack-prometheus", "prometheus", "http://prometheus:9090")
    ]
    providers = load(GRAFANA / "provisioning" / "dashboards" / "appstack.yml")["providers"]
    # The compose files mount deploy/monitoring/grafana at /etc/grafana/appstack.
    assert [p["options"]["path"] for p in providers] == ["/etc/grafana/appstack/dashboards"]
    assert all(p["allowUiUpdates"] is False for p in providers)


def test_dashboards_are_valid_and_every_panel_queries_the_provisioned_source() -> None:
    uids = {
        s["uid"] for s in load(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    }
    found = dashboards()
    assert set(found) == {"api.json", "jobs.json"}
    dashboard_uids = [d["uid"] for d in found.values()]
    assert len(set(dashboard_uids)) == len(dashboard_uids)
    for name, dashboard in found.items():
        panels = [p for p in all_panels(dashboard) if p["type"] != "row"]
        assert panels, name
        ids = [p["id"] for p in panels]
        assert len(set(ids)) == len(ids), name
        titles = [p["title"] for p in panels]
        assert len(set(titles)) == len(titles), name
        for panel in panels:
            where = f"{name}: {panel['title']}"
            assert panel["datasource"]["uid"] in uids, where
            assert panel["targets"], where
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs), where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids, where
                assert target["expr"].strip(), where


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_runs_prometheus_and_grafana_in_the_monitoring_profile(file: str) -> None:
    services = load(ROOT / file)["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    for service in (prometheus, grafana):
        assert service["profiles"] == ["monitoring"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), service["ports"]
    assert prometheus["image"] == "${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.3}"
    assert grafana["image"].startswith("${GRAFANA_IMAGE:-grafana/grafana:11.")
    assert prometheus["user"] == "65534:65534"
    assert prometheus["read_only"] is True
    assert "./deploy/monitoring:/etc/prometheus:ro" in prometheus["volumes"]
    assert "prometheus-data:/prometheus" in prometheus["volumes"]
    assert "./deploy/monitoring/grafana:/etc/grafana/appstack:ro" in grafana["volumes"]
    assert "/tmp/metrics-token" in prometheus["command"][0]  # noqa: S108
    environment = grafana["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    if file == "docker-compose.prod.yml":
        # Beside api and worker on the backend network.
        assert prometheus["networks"] == ["backend"]
        assert grafana["networks"] == ["backend"]
