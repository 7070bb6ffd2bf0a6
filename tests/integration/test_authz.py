"""Nobody reaches what is not theirs, and no bad token gets in."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from core.security import create_access_token
from core.settings import Settings
from tests.integration.conftest import register, token_headers
from tests.integration.test_items import ITEM


async def test_another_users_item_is_404_everywhere(client: httpx.AsyncClient) -> None:
    alice = await token_headers(client, (await register(client))["email"])
    bob = await token_headers(client, (await register(client))["email"])
    item = (await client.post("/api/v1/items", json=ITEM, headers=alice)).json()
    url = f"/api/v1/items/{item['id']}"
    missing = f"/api/v1/items/{uuid.uuid4()}"

    for path in (url, missing):
        responses = [
            await client.get(path, headers=bob),
            await client.patch(path, json={"name": "stolen"}, headers=bob),
            await client.delete(path, headers=bob),
        ]
        assert [r.status_code for r in responses] == [404, 404, 404]
        # Same body for someone else's item and for no item at all.
        assert {json.dumps(r.json(), sort_keys=True) for r in responses} == {
            json.dumps({"error": {"code": "not_found", "message": "item not found"}})
        }
    listed = (await client.get("/api/v1/items", headers=bob)).json()
    assert listed["total"] == 0
    assert (await client.get(url, headers=alice)).json() == item  # untouched


def protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation under /api/v1 except registration, login and refresh
    (which take no access token), from the OpenAPI schema, so that a new route
    is covered as soon as it exists."""
    public = {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"}
    routes: list[tuple[str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/v1/") or path in public:
            continue
        # Every path parameter (a resource's id) gets a random UUID.
        concrete = re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), path)
        routes.extend((method.upper(), concrete) for method in operations)
    return routes


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def bad_tokens(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    user = await register(client)
    user_id = uuid.UUID(user["id"])
    key = settings.app.secret_key

    def signed(claims: dict[str, object]) -> str:
        return jwt.encode(claims, key, algorithm="HS256")

    # A real login's token, to tamper with.
    login = await token_headers(client, user["email"])
    good = login["Authorization"].removeprefix("Bearer ")
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    session_id = uuid.UUID(claims["sid"])
    now = datetime.now(UTC)
    five = timedelta(minutes=5)
    return {
        "expired": create_access_token(
            user_id, session_id, secret=key, expires_in=timedelta(seconds=-1)
        ),
        "tampered": f"{header}.{b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "other-key": jwt.encode(
            {**claims, "iat": now, "exp": now + five},
            "a-different-secret-key-of-enough-length!",
            algorithm="HS256",
        ),
        "no-exp": signed({"sub": str(user_id), "sid": str(session_id), "iat": now}),
        # Signed with the right key but naming no auth session: never revocable.
        "no-sid": signed({"sub": str(user_id), "iat": now, "exp": now + five}),
        "unknown-session": create_access_token(user_id, uuid.uuid4(), secret=key, expires_in=five),
        # Someone else's session under this user's id.
        "unknown-user": create_access_token(uuid.uuid4(), session_id, secret=key, expires_in=five),
        "garbage": "not.a.token",
    }


async def test_every_protected_route_refuses_bad_tokens(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    routes = protected_routes(app)
    assert len(routes) >= 8  # the matrix covers items, users and jobs
    tokens = await bad_tokens(client, settings)
    cases: list[tuple[str, dict[str, str]]] = [("no token", {})] + [
        (name, {"Authorization": f"Bearer {token}"}) for name, token in tokens.items()
    ]
    failures: list[tuple[str, str, str, object]] = []
    for method, path in routes:
        for name, headers in cases:
            response = await client.request(method, path, headers=headers, json={})
            if response.status_code != 401:
                failures.append((method, path, name, response.status_code))
            elif response.headers.get("www-authenticate") != "Bearer":
                failures.append((method, path, name, "no WWW-Authenticate"))
    assert failures == []


@pytest.mark.parametrize("scheme", ["Basic", "bearer-less"])
async def test_other_schemes_are_401(client: httpx.AsyncClient, scheme: str) -> None:
    header = "Basic dXNlcjpwYXNz" if scheme == "Basic" else "just-a-token"
    response = await client.get("/api/v1/users/me", headers={"Authorization": header})
    assert response.status_code == 401
