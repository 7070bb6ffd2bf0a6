"""The migrate service creates the first superuser when asked; running it again
changes nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import compose, reset_throttles


def test_migrate_seeds_the_superuser_once(api: httpx.Client) -> None:
    email = f"Admin-{uuid.uuid4().hex[:8]}@Example.com"
    password = "a strong admin password"
    env = ["-e", f"FIRST_SUPERUSER_EMAIL={email}", "-e", f"FIRST_SUPERUSER_PASSWORD={password}"]
    first = compose("run", "--rm", "--no-deps", *env, "migrate", check=False)
    second = compose("run", "--rm", "--no-deps", *env, "migrate", check=False)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert f"superuser {email} created" in first.stderr
    assert f"superuser {email} already exists" in second.stderr

    reset_throttles()
    token = api.post("/api/v1/auth/login", data={"username": email.lower(), "password": password})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    users = api.get("/api/v1/users", headers=headers)
    assert users.status_code == 200
    admins = [u for u in users.json()["items"] if u["email"] == email.lower()]
    assert len(admins) == 1
    assert admins[0]["is_superuser"] is True
