"""The Render Blueprint (deploy/render.yaml) checked against Render's schema
and against the code it deploys.

The file must be valid for Render's published Blueprint schema, references
must resolve, the commands must be the image's entry points, every variable
must be a setting the app reads, the settings must load in production from
what Render provides, and the scale-out settings (PgBouncer, pre-deploy
migrations, autoscaling, deploy triggers, build filter, Postgres version)
must stay as deploy/RENDER.md describes them.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import re
import secrets
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from fastapi.routing import APIRoute
from pydantic_settings import BaseSettings

from api.health import router as health_router
from api.proxy import TrustedProxies
from core.settings import Settings, load_settings
from migrate import __main__ as migrate_main

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = ROOT / "deploy" / "render.yaml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# Render's Blueprint schema; provenance in tests/schemas/README.md.
SCHEMA = ROOT / "tests" / "schemas" / "render.yaml.schema.json"

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
RENDER_POOLER_HOST = "dpg-abc123-pooler"
RENDER_POOLED_URL = (
    f"postgres://appstack:s3cr3t-Render-generated@{RENDER_POOLER_HOST}:6432/appstack"
)
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


def _env_var(service: Service, key: str) -> EnvVar:
    """The service's own entry for ``key`` (an empty one when it has none)."""
    entries = [e for e in service.get("envVars", []) if e.get("key") == key]
    assert len(entries) <= 1, f"{service['name']} sets {key} {len(entries)} times"
    return entries[0] if entries else {}


def _group_value(groups: dict[str, list[EnvVar]], key: str) -> str:
    """The one value a group gives ``key``."""
    values = [e["value"] for entries in groups.values() for e in entries if e["key"] == key]
    assert len(values) == 1, f"{key} is set {len(values)} times in the groups"
    return str(values[0])


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


def test_every_service_migrates_before_it_starts(
    services: dict[str, Service], compose_commands: dict[str, str]
) -> None:
    """Every service running new code runs the compose migrate service's
    command first, as the owner: services deploy in any order, and none
    meets a schema older than its code."""
    for name, service in _compute(services).items():
        assert service.get("preDeployCommand") == compose_commands["migrate"], name
        owner = _env_var(service, "DATABASE_OWNER_URL")
        assert owner.get("fromDatabase", {}).get("property") == "connectionString", (
            f"{name}: its migrations need the owner's direct URL"
        )


def test_concurrent_migrations_wait_for_one_another() -> None:
    """Several services' pre-deploy commands at once are safe only because
    each upgrade runs under one session-level advisory lock."""
    source = inspect.getsource(migrate_main.migrate)
    assert "pg_advisory_lock(" in source
    assert "pg_advisory_unlock(" in source
    assert "direct=True" in source, "the lock needs a session: never through the pooler"


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
    """One beat: the leader lock keeps a second one (a deploy's overlap)
    from sending anything, so more instances would only idle."""
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
    database_property = entry.get("fromDatabase", {}).get("property")
    if database_property == "connectionString":
        return RENDER_DATABASE_URL
    if database_property == "connectionPoolString":
        return RENDER_POOLED_URL
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
    # Through the pooler exactly when the app knows it is; migrations never.
    assert settings.db.pooled == (RENDER_POOLER_HOST in settings.db.url.url)
    assert RENDER_POOLER_HOST not in settings.db.direct_url.url
    assert RENDER_POOLER_HOST not in settings.db.as_owner().direct_url.url


def test_blueprint_is_valid_for_renders_schema(blueprint: dict[str, Any]) -> None:
    """Render's published schema accepts the file: no unknown or misspelt
    field, every value of the type and in the range Render takes."""
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message[:200]}"
        for e in validator.iter_errors(blueprint)
    ]
    assert not errors, "\n".join(errors)


def test_api_and_worker_connect_through_pgbouncer(
    blueprint: dict[str, Any], services: dict[str, Service]
) -> None:
    """Render's PgBouncer (transaction mode) in front of the database; the
    API and the worker use its URL with DB_POOLER=transaction and keep a
    direct URL for session-level work; nothing else uses the pooled URL."""
    [database] = blueprint["databases"]
    assert database["connectionPool"] == "pgbouncer"
    for name, service in _compute(services).items():
        url = _env_var(service, "DATABASE_URL")["fromDatabase"]
        pooled = url["property"] == "connectionPoolString"
        assert pooled == (name in (API, WORKER)), f"{name}: DATABASE_URL is {url['property']}"
        pooler = _env_var(service, "DB_POOLER").get("value", "none")
        assert pooler == ("transaction" if pooled else "none"), f"{name}: DB_POOLER={pooler}"
        for key in ("DATABASE_DIRECT_URL", "DATABASE_OWNER_URL"):
            source = _env_var(service, key).get("fromDatabase", {})
            assert source.get("property", "connectionString") == "connectionString", (
                f"{name}: {key} must be direct"
            )
        if pooled:
            assert _env_var(service, "DATABASE_DIRECT_URL"), f"{name} has no direct URL"


def test_api_autoscales_and_the_budget_counts_its_maximum(
    services: dict[str, Service], groups: dict[str, list[EnvVar]]
) -> None:
    """The web service autoscales on CPU and memory (a paid-workspace
    feature), and the connection budget counts each service's most instances."""
    api = services[API]
    scaling = api["scaling"]
    assert "numInstances" not in api, "scaling replaces a fixed numInstances"
    assert 1 <= scaling["minInstances"] < scaling["maxInstances"]
    assert 0 < scaling["targetCPUPercent"] <= 90
    assert 0 < scaling["targetMemoryPercent"] <= 90
    assert "scaling" not in services[WORKER], "the worker scales by numInstances"
    assert int(_group_value(groups, "API_REPLICAS")) == scaling["maxInstances"]
    assert int(_group_value(groups, "WORKER_REPLICAS")) == services[WORKER]["numInstances"]


def test_deploys_wait_for_passing_checks(services: dict[str, Service]) -> None:
    """A push deploys only once the commit's CI checks pass."""
    for name, service in _compute(services).items():
        assert service.get("autoDeployTrigger") == "checksPass", name
        assert "autoDeploy" not in service, f"{name} uses the deprecated autoDeploy"


def _glob(pattern: str) -> re.Pattern[str]:
    """A buildFilter glob as a regex: ``**`` spans directories, ``*`` and
    ``?`` stay within one."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        else:
            parts.append({"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])))
            i += 1
    return re.compile("".join(parts))


def _dockerfile_stages() -> dict[str, list[str]]:
    """Each named stage's instructions, ``FROM`` first, continuations joined."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if match:
            current = stages.setdefault(match[1], [])
        if line.strip() and not line.lstrip().startswith("#"):
            current.append(line)
    return stages


def _image_inputs(stage: str, stages: dict[str, list[str]]) -> set[str]:
    """The repository paths ``stage`` and the stages it uses read: COPY
    sources and bind-mounted files."""
    inputs: set[str] = set()
    for line in stages[stage]:
        used = re.findall(r"^FROM\s+(\S+)|--from=(\S+)", line, re.I)
        for name in (n for pair in used for n in pair if n in stages):
            inputs |= _image_inputs(name, stages)
        inputs |= set(re.findall(r"type=bind,source=([^,\s]+)", line))
        copy = line.split()
        if copy[0].upper() == "COPY" and not any(a.startswith("--from") for a in copy):
            inputs |= {a for a in copy[1:-1] if not a.startswith("--")}
    return inputs


def _files(path: str) -> list[str]:
    """``path`` itself, or the files under it as the build context holds them."""
    directory = ROOT / path
    if not directory.is_dir():
        return [path.removeprefix("./")]
    return [
        f.relative_to(ROOT).as_posix()
        for f in directory.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
    ]


def _triggers_a_build(build_filter: dict[str, list[str]], path: str) -> bool:
    """Whether a change to ``path`` starts a build (no ``paths``: every path)."""
    ignored = build_filter.get("ignoredPaths", [])
    if any(_glob(pattern).fullmatch(path) for pattern in ignored):
        return False
    return any(_glob(pattern).fullmatch(path) for pattern in build_filter.get("paths", ["**"]))


def test_only_changes_to_the_image_redeploy(services: dict[str, Service]) -> None:
    """Every service has the same buildFilter; a change to any file the
    runtime image is built from triggers a build, documentation and tests
    do not."""
    filters = [service.get("buildFilter") for service in _compute(services).values()]
    assert filters[0], "no buildFilter"
    assert all(f == filters[0] for f in filters), f"buildFilters differ: {filters}"
    build_filter: dict[str, list[str]] = filters[0]
    inputs = {i.removeprefix("./") for i in _image_inputs(RUNTIME_STAGE, _dockerfile_stages())} | {
        "Dockerfile"
    }
    assert {"pyproject.toml", "uv.lock", "core", "api"} <= inputs, f"parsed {inputs}"
    for path in sorted(p for i in inputs for p in _files(i)):
        assert _triggers_a_build(build_filter, path), f"a change to {path} would not redeploy"
    for path in (
        "README.md",
        "docs/SECURITY.md",
        "deploy/RENDER.md",
        "deploy/vm/deploy.sh",
        "tests/unit/test_render_blueprint.py",
        "bench/run.sh",
    ):
        assert not _triggers_a_build(build_filter, path), f"a change to {path} would redeploy"


def test_postgres_major_version_is_the_tested_one(blueprint: dict[str, Any]) -> None:
    """Render Postgres runs the major version the compose stack tests on."""
    image = _load(COMPOSE)["services"]["db"]["image"]
    match = re.search(r"postgres:(\d+)", image)
    assert match, f"no default Postgres version in {image!r}"
    [database] = blueprint["databases"]
    assert database["postgresMajorVersion"] == match[1]
