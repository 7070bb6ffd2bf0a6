"""Who may read ``GET /metrics``: a bearer of METRICS_TOKEN when it is set
(production requires it: on Render no proxy hides the path), anyone when it
is unset (a laptop, the test stack; Caddy hides it on a VM)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from core.settings import Settings

TOKEN = "metrics-token-for-the-tests-0123456789abcdef"
REFUSED = {"error": {"code": "not_authenticated", "message": "missing or invalid metrics token"}}


def with_token(settings: Settings, token: str | None) -> Settings:
    """``settings`` with METRICS_TOKEN set to ``token`` (None: unset)."""
    app = settings.app.model_copy(update={"metrics_token": token})
    return settings.model_copy(update={"app": app})


@pytest.fixture
def guarded(app: FastAPI, settings: Settings) -> None:
    """The app under test, with METRICS_TOKEN set."""
    app.state.settings = with_token(settings, TOKEN)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == REFUSED
    assert response.headers["www-authenticate"] == "Bearer"
    assert "appstack_http_requests" not in response.text


@pytest.mark.usefixtures("guarded")
async def test_a_token_is_required_when_one_is_set(client: httpx.AsyncClient) -> None:
    assert_refused(await client.get("/metrics"))


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token",
        f"Bearer {TOKEN[:-1]}",  # a prefix
        f"Bearer {TOKEN}x",  # and a little more
        f"Bearer {TOKEN.upper()}",
        "Bearer ",
        "Bearer",
        f"Basic {TOKEN}",  # the right value under another scheme
        TOKEN,  # no scheme at all
    ],
    ids=["wrong", "prefix", "longer", "case", "empty", "no-token", "basic", "no-scheme"],
)
async def test_a_wrong_token_is_refused(client: httpx.AsyncClient, authorization: str) -> None:
    assert_refused(await client.get("/metrics", headers={"Authorization": authorization}))


@pytest.mark.usefixtures("guarded")
async def test_a_header_outside_ascii_is_refused_not_a_500(client: httpx.AsyncClient) -> None:
    """Header bytes arrive decoded as Latin-1; the comparison takes any of them."""
    raw = b"Bearer caf\xe9-" + TOKEN.encode()
    assert_refused(await client.get("/metrics", headers=[(b"Authorization", raw)]))


@pytest.mark.usefixtures("guarded")
async def test_a_users_access_token_is_no_metrics_token(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    assert_refused(await client.get("/metrics", headers=user_headers))


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_right_token_reads_the_metrics(client: httpx.AsyncClient, scheme: str) -> None:
    """The scheme is case-insensitive (RFC 9110); the token is not."""
    response = await client.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "appstack_http_requests_total" in response.text


@pytest.mark.parametrize("environment", ["development", "test"])
async def test_unset_the_metrics_are_open_outside_production(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, environment: str
) -> None:
    unset = with_token(settings, None)
    app.state.settings = unset.model_copy(
        update={"app": unset.app.model_copy(update={"environment": environment})}
    )
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert "appstack_http_requests_total" in response.text


@pytest.mark.usefixtures("guarded")
async def test_the_token_guards_only_the_metrics(client: httpx.AsyncClient) -> None:
    """The probes stay open to the platform's health checks."""
    assert (await client.get("/health/live")).status_code == 200
