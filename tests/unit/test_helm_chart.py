"""The Helm chart (deploy/helm/appstack) rendered, linted and validated offline.

Helm's own engine (its Go SDK, through helm-python-sdk) renders the chart with
the default values and with every optional feature on; every object must pass
Kubernetes' schemas (kubernetes-validate, strict: no unknown field) for each
supported minor version, the ScaledObject KEDA's CRD schema, and the chart
must run what docker-compose.prod.yml runs, with the settings the app reads.
"""

from __future__ import annotations

import copy
import re
import secrets
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi.routing import APIRoute
from kubernetes_validate.utils import all_versions, major_minor
from pydantic_settings import BaseSettings

from api.health import router as health_router
from core.settings import Settings, WebSettings, load_settings
from core.settings_base import SECRETS_DIR_VARIABLE
from core.settings_jobs import JobSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "appstack"
COMPOSE = ROOT / "docker-compose.prod.yml"
DOCKERFILE = ROOT / "Dockerfile"
KEDA_CRD = ROOT / "tests" / "schemas" / "keda.sh_scaledobjects.yaml"

Obj = dict[str, Any]
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion), and
# every newer minor version whose schemas kubernetes-validate ships.
OLDEST = (1, 29)
KUBE_VERSIONS = sorted(
    {
        major_minor(v)
        for v in all_versions()
        if tuple(int(p) for p in major_minor(v).split(".")) >= OLDEST
    },
    key=lambda v: tuple(int(p) for p in v.split(".")),
)
# Objects of these API groups are checked against their CRDs, not Kubernetes'.
CRD_GROUPS = ("keda.sh/",)

EVERYTHING: Obj = {
    "api": {
        "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "api-tls"},
        "autoscaling": {"enabled": True},
        "webConcurrency": 3,
        "forwardedAllowIps": "10.244.0.0/16",
    },
    "worker": {"keda": {"enabled": True}},
    "networkPolicy": {
        "enabled": True,
        "apiFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
    },
    # PgBouncer in transaction mode in front of a managed Postgres.
    "database": {"pooler": "transaction", "maxConnections": 100},
    "secret": {"extraKeys": ["SENTRY_DSN"], "migrateExtraKeys": ["FIRST_SUPERUSER_PASSWORD"]},
}
VALUE_SETS: dict[str, Obj] = {
    "defaults": {},
    "everything": EVERYTHING,
    "secrets-as-env": {"secret": {"mode": "env"}},
}


def render(values: Obj) -> list[Obj]:
    """The chart's objects as an install with ``values`` would create them."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="demo", namespace="prod", is_install=True)
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[Obj, list[Obj]]:
    """(values, objects) for each set of values."""
    values = VALUE_SETS[request.param]
    return values, render(values)


@pytest.fixture(scope="module")
def everything() -> list[Obj]:
    return render(EVERYTHING)


@pytest.fixture(scope="module")
def compose() -> dict[str, Obj]:
    """docker-compose.prod.yml's services."""
    services: dict[str, Obj] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def one(objects: list[Obj], kind: str, component: str | None = None) -> Obj:
    """The only object of ``kind`` (and component label)."""
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (
            component is None
            or o["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects for {component}"
    return found[0]


def pod_spec(objects: list[Obj], component: str) -> Obj:
    kind = "Job" if component == "migrate" else "Deployment"
    spec: Obj = one(objects, kind, component)["spec"]["template"]["spec"]
    return spec


def container(objects: list[Obj], component: str) -> Obj:
    [only] = pod_spec(objects, component)["containers"]
    assert isinstance(only, dict)
    return only


def setting_names() -> set[str]:
    """The environment variables the settings classes read."""
    names = {SECRETS_DIR_VARIABLE}
    for field in Settings.model_fields.values():
        cls = field.annotation
        assert isinstance(cls, type)
        assert issubclass(cls, BaseSettings)
        names |= {name.upper() for name in cls.model_fields}
    return names


def test_helm_lint_is_clean() -> None:
    """helm lint --strict finds no warning or error, for every set of values,
    against the oldest and the newest Kubernetes version."""
    for values in VALUE_SETS.values():
        for version in (KUBE_VERSIONS[0], KUBE_VERSIONS[-1]):
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}.0")
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            assert not report["errors"], (version, values, report)
            assert not problems, (version, values, report)


def test_enough_kubernetes_versions() -> None:
    assert len(KUBE_VERSIONS) >= 3, KUBE_VERSIONS
    assert KUBE_VERSIONS[0] == "1.29"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.29.0-0"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_objects_validate_strictly(version: str, rendered: tuple[Obj, list[Obj]]) -> None:
    """Every object passes Kubernetes' schema of that version; strict: a
    misspelt or misplaced field fails instead of being dropped by the server."""
    _, objects = rendered
    for obj in objects:
        if not obj["apiVersion"].startswith(CRD_GROUPS):
            kubernetes_validate.validate(obj, version, strict=True)


def test_validation_can_fail() -> None:
    """The strict schemas do refuse a field Kubernetes does not know."""
    deployment = copy.deepcopy(one(render({}), "Deployment", "api"))
    [api] = deployment["spec"]["template"]["spec"]["containers"]
    api["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def test_expected_objects(rendered: tuple[Obj, list[Obj]]) -> None:
    values, objects = rendered
    kinds = sorted(o["kind"] for o in objects)
    base = ["ConfigMap", "Deployment", "Deployment", "Deployment", "Job"]
    base += ["PodDisruptionBudget", "PodDisruptionBudget", "Service", "ServiceAccount"]
    optional = ["HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "NetworkPolicy"]
    optional += ["NetworkPolicy", "ScaledObject", "TriggerAuthentication"]
    assert kinds == sorted(base + (optional if values is EVERYTHING else []))


def closed(schema: Any) -> Any:
    """An OpenAPI schema where objects allow only their listed properties, as
    the API server's pruning keeps only those (silently dropping the rest)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result.setdefault("additionalProperties", False)
    return result


@pytest.fixture(scope="module")
def keda_validator() -> jsonschema.Draft7Validator:
    """KEDA's ScaledObject schema (keda.sh/v1alpha1), with unknown fields refused."""
    crd = yaml.safe_load(KEDA_CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = closed(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_scaled_object_matches_kedas_crd(
    everything: list[Obj], keda_validator: jsonschema.Draft7Validator
) -> None:
    scaled = one(everything, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    keda_validator.validate(scaled)

    typo = copy.deepcopy(scaled)
    typo["spec"]["minReplicas"] = 1
    assert not keda_validator.is_valid(typo), "the schema accepts an unknown field"


def test_scaled_object_scales_the_worker_on_active_jobs(everything: list[Obj]) -> None:
    """KEDA scales the worker Deployment, never below one pod, from the jobs
    table, with the connection URL from the existing Secret."""
    scaled = one(everything, "ScaledObject")["spec"]
    worker = one(everything, "Deployment", "worker")
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"], "the Deployment would fight KEDA over replicas"
    assert scaled["minReplicaCount"] >= 1
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    active = r"FROM jobs WHERE status IN \('queued', 'running'\)"
    assert re.search(active, trigger["metadata"]["query"])
    auth = one(everything, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref == {"parameter": "connection", "name": "appstack", "key": "DATABASE_URL"}

    zero = render({"worker": {"keda": {"enabled": True, "minReplicaCount": 0}}})
    assert one(zero, "ScaledObject")["spec"]["minReplicaCount"] == 1


def compose_probe(service: Obj) -> tuple[str, int, str]:
    """(port variable, its default, path) of a compose service's HTTP healthcheck."""
    command = " ".join(service["healthcheck"]["test"])
    match = re.search(r'os\.environ\.get\("(\w+)",\s*"(\d+)"\)\}(/[\w/]*)', command)
    assert match, f"no URL in {command!r}"
    return match[1], int(match[2]), match[3]


def seconds(duration: str) -> int:
    """A compose duration such as ``30s`` or ``2m``."""
    match = re.fullmatch(r"(\d+)([sm])", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def env_values(spec: Obj) -> dict[str, str]:
    """A container's literal environment variables."""
    return {e["name"]: e["value"] for e in spec.get("env", []) if "value" in e}


def secret_keys(objects: list[Obj], component: str) -> set[str]:
    """The Secret's keys one component reads, as files or as variables."""
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container(objects, component).get("env", [])
        if "valueFrom" in e
    }
    for volume in pod_spec(objects, component)["volumes"]:
        items = volume.get("secret", {}).get("items", [])
        assert all(item["key"] == item["path"] for item in items), "a file named unlike its key"
        keys |= {item["key"] for item in items}
    return keys


ROLES = ("api", "worker", "scheduler", "migrate")


@pytest.mark.parametrize("role", ROLES)
def test_command_is_the_compose_command(
    role: str, everything: list[Obj], compose: dict[str, Obj]
) -> None:
    assert container(everything, role)["command"] == compose[role]["command"]


def test_api_probes_and_port_match_compose(everything: list[Obj], compose: dict[str, Obj]) -> None:
    """Readiness is compose's healthcheck; liveness and start-up are /health/live;
    all on the port gunicorn binds, which the Service targets."""
    variable, port, ready = compose_probe(compose["api"])
    api = container(everything, "api")
    assert variable == "PORT"
    assert ready == "/health/ready"
    assert WebSettings.model_fields["port"].default == port
    assert env_values(api)["PORT"] == str(port)
    assert api["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert api["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
    live = {"path": "/health/live", "port": "http"}
    assert api["startupProbe"]["httpGet"] == api["livenessProbe"]["httpGet"] == live
    routes = {
        r.path
        for r in health_router.routes
        if isinstance(r, APIRoute) and "GET" in (r.methods or ())
    }
    assert {"/health/live", "/health/ready"} <= routes
    service = one(everything, "Service", "api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_worker_probes_and_port_match_compose(
    everything: list[Obj], compose: dict[str, Obj]
) -> None:
    variable, port, path = compose_probe(compose["worker"])
    worker = container(everything, "worker")
    assert variable == "WORKER_METRICS_PORT"
    assert path == "/health"
    assert JobSettings.model_fields["worker_metrics_port"].default == port
    assert env_values(worker)[variable] == str(port)
    assert worker["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"] == {"path": path, "port": "metrics"}


def dockerfile_ids() -> tuple[int, int]:
    """The uid and gid of the image's user."""
    text = DOCKERFILE.read_text()
    uid = re.search(r"useradd [^\n]*--uid (\d+)", text)
    gid = re.search(r"groupadd [^\n]*--gid (\d+)", text)
    assert uid
    assert gid
    return int(uid[1]), int(gid[1])


@pytest.mark.parametrize("role", ROLES)
def test_security_matches_compose(
    role: str, rendered: tuple[Obj, list[Obj]], compose: dict[str, Obj]
) -> None:
    """The image's user, a read-only root, no capability, no privilege gain,
    RuntimeDefault seccomp, and /tmp and /dev/shm of compose's sizes."""
    _, objects = rendered
    service = compose[role]
    uid, gid = dockerfile_ids()
    assert service["user"] == f"{uid}:{gid}"
    pod = pod_spec(objects, role)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    context = container(objects, role)["securityContext"]
    assert service["read_only"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert service["cap_drop"] == ["ALL"]
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "no-new-privileges:true" in service["security_opt"]
    assert context["allowPrivilegeEscalation"] is False
    [tmpfs] = service["tmpfs"]
    tmp_size = re.search(r"size=\$\{TMP_SIZE:-(\d+)m\}", tmpfs)
    assert tmpfs.startswith("/tmp:")  # noqa: S108
    assert tmp_size
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(objects, role)["volumeMounts"]}
    tmp_volume = volumes[mounts["/tmp"]]  # noqa: S108
    assert tmp_volume["emptyDir"] == {"sizeLimit": f"{tmp_size[1]}Mi"}
    shm = re.fullmatch(r"(\d+)m", service["shm_size"])
    assert shm
    shm_volume = volumes[mounts["/dev/shm"]]  # noqa: S108
    assert shm_volume["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{shm[1]}Mi"}


def test_every_variable_is_a_setting(rendered: tuple[Obj, list[Obj]]) -> None:
    """The chart sets no variable (ConfigMap key, container variable, secret
    file) that the app would silently ignore."""
    _, objects = rendered
    names = set(one(objects, "ConfigMap")["data"])
    for role in ROLES:
        names |= {e["name"] for e in container(objects, role).get("env", [])}
        names |= secret_keys(objects, role)
    unknown = sorted(names - setting_names())
    assert not unknown, f"not read by any settings class: {unknown}"


def test_owner_url_reaches_only_the_migrations(
    rendered: tuple[Obj, list[Obj]], compose: dict[str, Obj]
) -> None:
    """As in compose, only migrations get DATABASE_OWNER_URL; every role gets
    the credentials production requires."""
    _, objects = rendered
    assert compose["api"]["environment"]["DATABASE_OWNER_URL"] == ""
    assert compose["migrate"]["environment"]["DATABASE_OWNER_URL"]
    required = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"}
    for role in ROLES:
        keys = secret_keys(objects, role)
        assert required <= keys, f"{role} lacks {sorted(required - keys)}"
        assert ("DATABASE_OWNER_URL" in keys) == (role == "migrate"), role


def test_migrations_run_as_a_bounded_hook(rendered: tuple[Obj, list[Obj]]) -> None:
    """Before install and upgrade, replaced at the next run, a bounded number
    of attempts; its settings inline (the ConfigMap does not exist yet)."""
    _, objects = rendered
    job = one(objects, "Job", "migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    policy = set(annotations["helm.sh/hook-delete-policy"].split(","))
    assert policy == {"before-hook-creation", "hook-succeeded"}
    assert 0 <= job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["activeDeadlineSeconds"] > 0
    pod = pod_spec(objects, "migrate")
    assert pod["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod, "the release's ServiceAccount is created after hooks"
    migrate = container(objects, "migrate")
    assert "envFrom" not in migrate
    assert env_values(migrate) == one(objects, "ConfigMap")["data"]


def test_api_rolls_out_without_losing_capacity(
    rendered: tuple[Obj, list[Obj]], compose: dict[str, Obj]
) -> None:
    _values, objects = rendered
    api = one(objects, "Deployment", "api")
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = api["spec"]["template"]["spec"]
    sleep, delay = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    assert int(delay) > 0
    graceful = WebSettings.model_fields["graceful_timeout"].default
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > int(delay) + graceful, "gunicorn would be killed while draining"
    assert grace >= seconds(compose["api"]["stop_grace_period"])
    hpa = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert ("replicas" in api["spec"]) == (not hpa), "the Deployment would fight the HPA"
    for autoscaler in hpa:
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
        assert autoscaler["spec"]["minReplicas"] >= 1


@pytest.mark.parametrize("component", ["api", "worker"])
def test_disruption_budgets_select_their_pods(
    component: str, rendered: tuple[Obj, list[Obj]]
) -> None:
    _, objects = rendered
    pdb = one(objects, "PodDisruptionBudget", component)
    deployment = one(objects, "Deployment", component)
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] >= 1, "a node could never be drained"


def test_worker_grace_outlasts_compose(
    rendered: tuple[Obj, list[Obj]], compose: dict[str, Obj]
) -> None:
    """Celery's warm shutdown finishes running tasks before the pod is killed."""
    _, objects = rendered
    grace = pod_spec(objects, "worker")["terminationGracePeriodSeconds"]
    assert grace > seconds(compose["worker"]["stop_grace_period"])


def test_exactly_one_scheduler(rendered: tuple[Obj, list[Obj]]) -> None:
    """One beat, stopped before its replacement starts, scaled by nothing."""
    _, objects = rendered
    scheduler = one(objects, "Deployment", "scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}
    targets = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert scheduler["metadata"]["name"] not in targets


def fake_secret(key: str) -> str:
    """A value of the kind the Secret holds for ``key``."""
    word = secrets.token_urlsafe(24)
    return {
        "DATABASE_URL": f"postgresql://appstack_rw:{word}@pgbouncer:6432/appstack",
        "DATABASE_OWNER_URL": f"postgresql://appstack:{word}@db.internal:5432/appstack?sslmode=require",
        "REDIS_URL": f"rediss://:{word}@redis.internal:6379/0",
        "SENTRY_DSN": f"https://{word}@sentry.invalid/1",
    }.get(key, secrets.token_urlsafe(36))


@pytest.mark.parametrize("role", ROLES)
def test_settings_load_from_the_chart(
    role: str, everything: list[Obj], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each role's settings load in production from what its pod gets: the
    ConfigMap (inline for migrations), its variables, the Secret's files."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    spec = container(everything, role)
    env = {} if role == "migrate" else dict(one(everything, "ConfigMap")["data"])
    env |= env_values(spec)
    [mount] = [m for m in spec["volumeMounts"] if m["name"] == "secrets"]
    assert env.pop(SECRETS_DIR_VARIABLE) == mount["mountPath"]
    files = {key: fake_secret(key) for key in secret_keys(everything, role)}
    for key, value in files.items():
        (tmp_path / key).write_text(value + "\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path))

    settings = load_settings()

    assert settings.app.environment == "production"
    assert settings.app.secret_key == files["SECRET_KEY"]
    assert settings.db.database_url == files["DATABASE_URL"]
    assert settings.db.pooled, "the pgbouncer values set DB_POOLER=transaction"
    assert settings.db.database_owner_url == files.get("DATABASE_OWNER_URL")
    assert settings.redis.redis_url == files["REDIS_URL"]


def test_connection_budget_counts_the_largest_fleet(rendered: tuple[Obj, list[Obj]]) -> None:
    """API_REPLICAS and WORKER_REPLICAS cover the autoscalers' maximum (or
    the fixed count) plus the pod a rolling update adds."""
    _, objects = rendered
    config = one(objects, "ConfigMap")["data"]
    hpa = [o["spec"]["maxReplicas"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    keda = [o["spec"]["maxReplicaCount"] for o in objects if o["kind"] == "ScaledObject"]
    for component, autoscaled, variable in (
        ("api", hpa, "API_REPLICAS"),
        ("worker", keda, "WORKER_REPLICAS"),
    ):
        deployment = one(objects, "Deployment", component)["spec"]
        most = autoscaled[0] if autoscaled else deployment["replicas"]
        surge = deployment["strategy"]["rollingUpdate"]["maxSurge"]
        assert int(config[variable]) == most + surge, variable


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secret": {"mode": "file"}}, "secret.mode must be files or env"),
        ({"database": {"pooler": "session"}}, "database.pooler must be none or transaction"),
    ],
)
def test_unknown_modes_are_refused(values: Obj, message: str) -> None:
    """A misspelt mode stops the install instead of deploying pods without secrets."""
    with pytest.raises(helm.HelmError, match=message):
        render(values)
