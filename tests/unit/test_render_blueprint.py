"""The Render Blueprint (deploy/render.yaml) checked against the code it deploys.

References must resolve, the commands must be the image's entry points, every
variable must be a setting the app reads, and the settings must load in
production from what Render provides.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from pydantic_settings import BaseSettings

from api.health import router as health_router
from api.proxy import TrustedProxies
from core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = ROOT / "deploy" / "render.yaml"
COMPOSE = ROOT / "docker-compose.yml"

API = "appstack-api"
WORKER = "appstack-worker"
SCHEDULER = "appstack-scheduler"
# Each Blueprint service runs the same process as this compose service.
COMPOSE_SERVICE = {API: "api", WORKER: "worker", SCHEDULER: "scheduler"}

# Render's default when a resource names no region.
DEFAULT_REGION = "oregon"
# The Dockerfile stage the services must run: Render builds the last one.
RUNTIME_STAGE = "runtime"

# What Render fills in for the values the Blueprint does not spell out.
RENDER_DATABASE_URL = "postgres://appstack:s3cr3t-Render-generated@dpg-abc123-a:5432/appstack"
RENDER_REDIS_URL = "redis://red-abc123:6379"
RENDER_PORT = "10000"

Service = dict[str, Any]
EnvVar = dict[str, Any]


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    """The parsed Blueprint."""
    return _load(BLUEPRINT)


@pytest.fixture(scope="module")
def services(blueprint: dict[str, Any]) -> dict[str, Service]:
    """Blueprint services by name."""
    return {service["name"]: service for service in blueprint.get("services", [])}


@pytest.fixture(scope="module")
def groups(blueprint: dict[str, Any]) -> dict[str, list[EnvVar]]:
    """Each environment group's variables, by group name."""
    return {group["name"]: group["envVars"] for group in blueprint.get("envVarGroups", [])}


@pytest.fixture(scope="module")
def compose_commands() -> dict[str, str]:
    """Each compose service's command, joined with spaces."""
    compose = _load(COMPOSE)
    return {
        name: " ".join(service["command"])
        for name, service in compose["services"].items()
        if "command" in service
    }


def _compute(services: dict[str, Service]) -> dict[str, Service]:
    return {name: s for name, s in services.items() if s["type"] != "keyvalue"}


def _all_env_vars(blueprint: dict[str, Any]) -> list[EnvVar]:
    """Every envVars entry, in services and in groups."""
    entries: list[EnvVar] = []
    for service in blueprint.get("services", []):
        entries += service.get("envVars", [])
    for group in blueprint.get("envVarGroups", []):
        entries += group["envVars"]
    return entries


def _setting_names() -> set[str]:
    """The environment variables the settings classes read."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        cls = field.annotation
        assert isinstance(cls, type)
        assert issubclass(cls, BaseSettings)
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{name}".upper() for name in cls.model_fields}
    return names


def test_names_are_unique(blueprint: dict[str, Any]) -> None:
    """References resolve by name, so no name is used twice."""
    for section in ("services", "databases", "envVarGroups"):
        names = [entry["name"] for entry in blueprint.get(section, [])]
        assert len(names) == len(set(names)), f"duplicate names in {section}: {names}"


def test_from_database_names_a_database(blueprint: dict[str, Any]) -> None:
    """Every ``fromDatabase`` points at an entry of ``databases``."""
    databases = {db["name"] for db in blueprint.get("databases", [])}
    refs = [e["fromDatabase"] for e in _all_env_vars(blueprint) if "fromDatabase" in e]
    assert refs, "no variable reads from a database"
    for ref in refs:
        assert ref["name"] in databases, f"fromDatabase {ref['name']!r} is not in databases"


def test_from_service_names_a_service_of_that_type(
    blueprint: dict[str, Any], services: dict[str, Service]
) -> None:
    """Every ``fromService`` points at a service with that name and type."""
    refs = [e["fromService"] for e in _all_env_vars(blueprint) if "fromService" in e]
    assert refs, "no variable reads from a service"
    for ref in refs:
        assert ref["name"] in services, f"fromService {ref['name']!r} is not in services"
        actual = services[ref["name"]]["type"]
        assert actual == ref["type"], f"{ref['name']} is a {actual}, not a {ref['type']}"


def test_from_group_names_a_group(
    blueprint: dict[str, Any], groups: dict[str, list[EnvVar]]
) -> None:
    """Every ``fromGroup`` points at an entry of ``envVarGroups``."""
    refs = [e["fromGroup"] for e in _all_env_vars(blueprint) if "fromGroup" in e]
    for ref in refs:
        assert ref in groups, f"fromGroup {ref!r} is not in envVarGroups"


def test_groups_hold_only_values_and_generated_values(groups: dict[str, list[EnvVar]]) -> None:
    """Render's environment groups cannot reference databases, services or groups."""
    for name, env_vars in groups.items():
        for entry in env_vars:
            assert set(entry) <= {"key", "value", "generateValue"}, (
                f"group {name}: {entry} uses more than key, value and generateValue"
            )


def test_compute_services_build_the_repository_dockerfile(services: dict[str, Service]) -> None:
    """One image for every process: the same Dockerfile, built from the repository root."""
    compute = _compute(services)
    assert set(compute) == set(COMPOSE_SERVICE)
    for name, service in compute.items():
        assert service["runtime"] == "docker", f"{name} does not use runtime docker"
        assert service["dockerContext"] == ".", f"{name} builds from {service['dockerContext']}"
    paths = {service["dockerfilePath"] for service in compute.values()}
    assert len(paths) == 1, f"services build different Dockerfiles: {sorted(paths)}"
    assert (ROOT / paths.pop()).is_file()


def test_dockerfile_ends_with_the_runtime_stage(services: dict[str, Service]) -> None:
    """Render builds the Dockerfile's last stage: it must be the runtime image."""
    dockerfile = ROOT / services[API]["dockerfilePath"]
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
    assert stages, "the Dockerfile names no stages"
    assert stages[-1] == RUNTIME_STAGE, (
        f"the last stage is {stages[-1]!r}: Render would deploy it, not {RUNTIME_STAGE!r}"
    )


@pytest.mark.parametrize("name", sorted(COMPOSE_SERVICE))
def test_command_is_the_compose_command(
    name: str, services: dict[str, Service], compose_commands: dict[str, str]
) -> None:
    """Each service runs what the same role runs under compose."""
    assert services[name]["dockerCommand"] == compose_commands[COMPOSE_SERVICE[name]]


def test_pre_deploy_runs_the_migrations_once(
    services: dict[str, Service], compose_commands: dict[str, str]
) -> None:
    """The API's pre-deploy command is the compose migrate service; no other runs one."""
    assert services[API]["preDeployCommand"] == compose_commands["migrate"]
    others = [name for name in (WORKER, SCHEDULER) if "preDeployCommand" in services[name]]
    assert not others, f"migrations would also run before deploying {others}"


def test_entry_points_exist(services: dict[str, Service]) -> None:
    """The files and modules the commands name are in the repository."""
    api = services[API]["dockerCommand"].split()
    worker = services[WORKER]["dockerCommand"].split()
    migrate = services[API]["preDeployCommand"].split()
    config = api[api.index("-c") + 1]
    app_module = api[-1].split(":")[0]
    celery_module = worker[worker.index("-A") + 1]
    migrate_package = migrate[migrate.index("-m") + 1]
    for path in (
        ROOT / config,
        ROOT / f"{app_module.replace('.', '/')}.py",
        ROOT / f"{celery_module.replace('.', '/')}.py",
        ROOT / migrate_package.replace(".", "/") / "__main__.py",
    ):
        assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"


def test_health_check_is_the_readiness_route(services: dict[str, Service]) -> None:
    """Render probes ``/health/ready``, a GET route of the API."""
    path = services[API]["healthCheckPath"]
    assert path == "/health/ready"
    routes = {
        (method, route.path)
        for route in health_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert ("GET", path) in routes, f"the API has no GET {path} route"


def test_key_value_is_a_private_queue(services: dict[str, Service]) -> None:
    """The broker never evicts keys and takes no connection from outside Render."""
    [key_value] = [s for s in services.values() if s["type"] == "keyvalue"]
    assert key_value["maxmemoryPolicy"] == "noeviction"
    assert key_value["ipAllowList"] == []


def test_settings_are_shared_and_production(
    services: dict[str, Service], groups: dict[str, list[EnvVar]]
) -> None:
    """One generated SECRET_KEY in a group every service uses; ENVIRONMENT is production."""
    secret_groups = {
        name for name, env_vars in groups.items() for e in env_vars if e["key"] == "SECRET_KEY"
    }
    assert len(secret_groups) == 1, f"SECRET_KEY is set in groups {sorted(secret_groups)}"
    [group] = secret_groups
    by_key = {e["key"]: e for e in groups[group]}
    assert by_key["SECRET_KEY"].get("generateValue") is True
    assert by_key["ENVIRONMENT"].get("value") == "production"
    for name, service in _compute(services).items():
        entries = service.get("envVars", [])
        assert {"fromGroup": group} in entries, f"{name} does not use the {group} group"
        own = {e.get("key") for e in entries}
        assert not own & {"SECRET_KEY", "ENVIRONMENT"}, f"{name} overrides the group's values"


def test_metrics_token_is_generated_for_the_api(
    services: dict[str, Service], groups: dict[str, list[EnvVar]]
) -> None:
    """No proxy hides /metrics on Render (and Render runs no Prometheus): the
    API asks for METRICS_TOKEN, which Render generates in a group the API
    uses, as do the workers (production refuses to start without it)."""
    setting = [
        (name, e)
        for name, env_vars in groups.items()
        for e in env_vars
        if e["key"] == "METRICS_TOKEN"
    ]
    assert len(setting) == 1, f"METRICS_TOKEN is set in groups {setting}"
    [(group, entry)] = setting
    assert entry == {"key": "METRICS_TOKEN", "generateValue": True}, "never a committed value"
    for name, service in _compute(services).items():
        entries = service.get("envVars", [])
        assert {"fromGroup": group} in entries, f"{name} does not get METRICS_TOKEN from {group}"
        own = {e.get("key") for e in entries}
        assert "METRICS_TOKEN" not in own, f"{name} overrides the group's value"


def test_forwarded_allow_ips_trusts_only_the_platforms_proxy(
    services: dict[str, Service], groups: dict[str, list[EnvVar]]
) -> None:
    """The API gets FORWARDED_ALLOW_IPS from its group, nowhere else, as ``*``
    alone (Render's proxy, the only way in, is the one hop: the client is the
    right-most X-Forwarded-For entry) or as explicit networks."""
    api_groups = {e["fromGroup"] for e in services[API].get("envVars", []) if "fromGroup" in e}
    setting = [
        (name, e)
        for name, env_vars in groups.items()
        for e in env_vars
        if e["key"] == "FORWARDED_ALLOW_IPS"
    ]
    assert len(setting) == 1, f"FORWARDED_ALLOW_IPS is set in groups {setting}"
    [(group, entry)] = setting
    assert group in api_groups, f"{API} does not get FORWARDED_ALLOW_IPS from {group}"
    for name, service in _compute(services).items():
        own = {e.get("key") for e in service.get("envVars", [])}
        assert "FORWARDED_ALLOW_IPS" not in own, f"{name} overrides the group's value"
    value = entry["value"]
    items = [item.strip() for item in value.split(",")]
    if "*" in items:
        assert items == ["*"], f"* mixed with addresses: {value!r}"
        proxies = TrustedProxies(value)
        assert proxies.any_peer
        assert proxies.networks == []
    else:
        for item in items:
            ipaddress.ip_network(item, strict=False)  # raises on anything else
        assert not TrustedProxies(value).any_peer


def test_scheduler_runs_exactly_one_instance(services: dict[str, Service]) -> None:
    """A second beat would send every periodic task twice."""
    scheduler = services[SCHEDULER]
    assert scheduler["numInstances"] == 1
    assert "scaling" not in scheduler


def test_resources_share_one_region(blueprint: dict[str, Any]) -> None:
    """The private network spans one region: every resource must be in it."""
    resources = blueprint.get("services", []) + blueprint.get("databases", [])
    regions = {r["name"]: r.get("region", DEFAULT_REGION) for r in resources}
    assert len(set(regions.values())) == 1, f"resources span regions: {regions}"


def test_every_variable_is_a_setting(blueprint: dict[str, Any]) -> None:
    """The Blueprint sets no variable the app would silently ignore."""
    keys = {e["key"] for e in _all_env_vars(blueprint) if "key" in e}
    unknown = sorted(keys - _setting_names())
    assert not unknown, f"not read by any settings class in core/settings.py: {unknown}"


def _resolve(entry: EnvVar, secret_key: str) -> str:
    """The value Render gives one variable (fake ones for what Render generates)."""
    if "value" in entry:
        return str(entry["value"])
    if entry.get("generateValue") is True:
        return secret_key
    if entry.get("fromDatabase", {}).get("property") == "connectionString":
        return RENDER_DATABASE_URL
    source = entry.get("fromService", {})
    if source.get("type") == "keyvalue" and source.get("property") == "connectionString":
        return RENDER_REDIS_URL
    pytest.fail(f"no fake value for {entry}")


def _environment(service: Service, groups: dict[str, list[EnvVar]]) -> dict[str, str]:
    """The variables a service runs with, as Render would set them."""
    secret_key = secrets.token_urlsafe(36)  # 48 characters
    env: dict[str, str] = {}
    for entry in service.get("envVars", []):
        for var in groups[entry["fromGroup"]] if "fromGroup" in entry else [entry]:
            env[var["key"]] = _resolve(var, secret_key)
    if service["type"] == "web":
        env["PORT"] = RENDER_PORT
    return env


@pytest.mark.parametrize("name", sorted(COMPOSE_SERVICE))
def test_settings_load_from_render_values(
    name: str,
    services: dict[str, Service],
    groups: dict[str, list[EnvVar]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each service's settings load, production checks included, from Render's values."""
    for setting in _setting_names():
        monkeypatch.delenv(setting, raising=False)
    env = _environment(services[name], groups)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    settings = load_settings()

    assert settings.app.environment == "production"
    assert settings.app.metrics_token == env["METRICS_TOKEN"]
    assert settings.db.url.url.startswith("postgresql+asyncpg://")
    assert settings.redis.redis_url == RENDER_REDIS_URL
    if services[name]["type"] == "web":
        assert settings.web.port == int(RENDER_PORT)
    if "WORKER_CONCURRENCY" in env:
        assert settings.jobs.worker_concurrency == int(env["WORKER_CONCURRENCY"])
