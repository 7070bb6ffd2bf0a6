"""The production stack under test (``tests/prod/run.sh`` starts it).

``docker compose`` here reaches that stack through COMPOSE_PROJECT_NAME,
COMPOSE_FILE and COMPOSE_ENV_FILES, exported by run.sh."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import compose

PROD_URL = os.environ.get("PROD_URL", "https://localhost:18443")
PROD_HTTP_URL = os.environ.get("PROD_HTTP_URL", "http://localhost:18080")
ENV_FILE = Path(os.environ.get("ENV_FILE", "tests/.env.prod.test"))
APP_SERVICES = ("api", "worker", "scheduler")
PASSWORD = "production check password"


def env_value(key: str) -> str:
    """A variable of the stack's env file."""
    for line in ENV_FILE.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise KeyError(key)


def container_ids(service: str) -> list[str]:
    return compose("ps", "-q", service).stdout.split()


def inspect(service: str) -> dict[str, Any]:
    """``docker inspect`` of the service's (single) container."""
    found = inspect_all(service)
    assert len(found) == 1, f"{service}: expected one container, found {len(found)}"
    return found[0]


def inspect_all(service: str) -> list[dict[str, Any]]:
    """``docker inspect`` of every container (replica) of the service."""
    ids = container_ids(service)
    assert ids, f"{service}: no container"
    details: list[dict[str, Any]] = json.loads(docker("inspect", *ids))
    return details


def docker(*args: str) -> str:
    """Run ``docker`` and return its output."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root certificate of Caddy's local CA (DOMAIN=localhost)."""
    path = tmp_path_factory.mktemp("caddy") / "root.crt"
    compose("cp", "caddy:/data/caddy/pki/authorities/local/root.crt", str(path))
    return path


@pytest.fixture(scope="session")
def https(ca_file: Path) -> Iterator[httpx.Client]:
    """A client that verifies the server against Caddy's CA, nothing else."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(base_url=PROD_URL, verify=context, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def account(https: httpx.Client) -> dict[str, str]:
    """A registered user: email and bearer headers."""
    email = f"prod-{uuid.uuid4().hex[:12]}@example.com"
    registered = https.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    return {"email": email, **login(https, email)}


def login(client: httpx.Client, email: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
