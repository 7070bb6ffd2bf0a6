"""End-to-end tests from the host against the running compose stack.

``make test`` brings the stack up under its own compose project and exports
API_URL; these tests also drive ``docker compose`` (stop, start, run) on that
project.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000")


def compose(
    *args: str, check: bool = True, timeout: float = 180, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose`` on the stack under test."""
    return subprocess.run(
        ["docker", "compose", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        input=input_text,
    )


def psql(sql: str) -> str:
    """Run SQL (fed on stdin, so any quoting is safe) in the stack's db
    container; returns psql's unaligned output."""
    result = compose(
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        'psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAq',
        input_text=sql,
    )
    return result.stdout.strip()


def redis_config(*names: str) -> dict[str, str]:
    """Settings of the running stack's Redis, read with CONFIG GET."""
    values: dict[str, str] = {}
    for name in names:
        reply = compose("exec", "-T", "redis", "redis-cli", "CONFIG", "GET", name).stdout
        key, value = reply.split()
        values[key] = value
    return values


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="session")
def api() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=API_URL, timeout=10) as client:
        yield client


def new_user_headers(api: httpx.Client, prefix: str = "e2e") -> dict[str, str]:
    """Register a fresh user (email starting with ``prefix``) and log them
    in: their Authorization header."""
    email = f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"
    password = "end-to-end password"
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    token = api.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="session")
def auth_headers(api: httpx.Client) -> dict[str, str]:
    """A fresh user's bearer token for the stack under test."""
    return new_user_headers(api)


def reset_throttles() -> None:
    """Forget failed password checks and counted registrations. The suite
    (schemathesis above all) registers and fails logins from this one address,
    so a later test that registers or logs in would otherwise meet the
    per-address limits (they are tested in tests/integration/test_throttle.py)."""
    script = (
        "for _, pattern in ipairs({'pw:fail:*', 'register:ip:*'}) do "
        "for _, k in ipairs(redis.call('KEYS', pattern)) do redis.call('DEL', k) end end"
    )
    compose("exec", "-T", "redis", "redis-cli", "EVAL", script, "0", timeout=30)
