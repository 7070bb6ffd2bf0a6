"""Request size limit, security headers and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.settings import Settings
from tests.integration.conftest import serve


async def test_declared_oversized_body_is_413_before_reading(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    body = b"x" * (1024 * 1024 + 1)
    response = await client.post(
        "/api/v1/items", content=body, headers={**user_headers, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_streamed_oversized_body_is_413(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB in all, with no Content-Length
            sent += 1
            yield b" " * 65536

    response = await client.post(
        "/api/v1/items",
        content=chunks(),
        headers={**user_headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_a_body_under_the_limit_passes(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    from tests.integration.test_items import ITEM

    response = await client.post(
        "/api/v1/items", json={**ITEM, "description": "d" * 10_000}, headers=user_headers
    )
    assert response.status_code == 201


async def test_security_headers(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/api/v1/users/me", "/no-such-path"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # not in development
    docs = await client.get("/docs")
    assert "content-security-policy" not in docs.headers  # Swagger UI loads scripts


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={
            "http": settings.http.model_copy(update={"cors_origins": "https://app.example.com"})
        }
    )
    async with serve(configured) as client:
        yield client


async def test_cors_allows_listed_origins_only(cors_client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = await cors_client.options(
        "/api/v1/items", headers={"Origin": "https://app.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["x-content-type-options"] == "nosniff"

    refused = await cors_client.options(
        "/api/v1/items", headers={"Origin": "https://evil.example.com", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    simple = await cors_client.get("/health/live", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in simple.headers


async def test_no_cors_headers_without_configuration(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # Python's json module reads these; JSON cannot write them back.
        ("/api/v1/auth/register", b'{"email": "a@b.co", "password": "x", "full_name": "\\ud800"}'),
        ("/api/v1/auth/register", b'{"email": "a@b.co", "password": "long enough", "\\ud800": 1}'),
        ("/api/v1/items", b'{"sku": "s", "name": "n", "price": NaN, "quantity": 1}'),
        ("/api/v1/items", b'{"sku": "s", "name": "n", "price": 1, "quantity": 1e400}'),
    ],
)
async def test_unwritable_inputs_are_a_422_not_a_500(
    client: httpx.AsyncClient, user_headers: dict[str, str], path: str, body: bytes
) -> None:
    response = await client.post(
        path, content=body, headers={**user_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
