"""Request ids, metrics and error reporting, in the app on the real stack."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
import sentry_sdk
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Job
from core.observability import init_sentry
from core.settings import Settings
from tests.metrics import counter, scrape_headers

FAMILY = "appstack_http_requests"


async def test_a_well_formed_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


async def test_a_missing_or_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/health/live")).headers["x-request-id"]
    assert uuid.UUID(hex=generated)
    replaced = await client.get("/health/live", headers={"X-Request-ID": "bad id\t"})
    assert replaced.headers["x-request-id"] not in ("bad id\t", generated)


async def test_even_a_rejected_request_gets_an_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/path", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-1"


async def test_a_job_remembers_the_request_that_created_it(
    client: httpx.AsyncClient, session: AsyncSession, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/jobs/ping",
        json={"message": "traced"},
        headers={**user_headers, "X-Request-ID": "enqueue-7"},
    )
    assert response.status_code == 202, response.text
    job = await session.get(Job, uuid.UUID(response.json()["id"]))
    assert job is not None
    assert job.request_id == "enqueue-7"


async def test_metrics_count_a_request_under_its_route_template(
    client: httpx.AsyncClient, user_headers: dict[str, str], settings: Settings
) -> None:
    route = "/api/v1/items/{item_id}"
    scrape = scrape_headers(settings.app.metrics_token)
    before = counter(
        (await client.get("/metrics", headers=scrape)).text, FAMILY, route=route, status="404"
    )
    missing = await client.get(f"/api/v1/items/{uuid.uuid4()}", headers=user_headers)
    assert missing.status_code == 404
    response = await client.get("/metrics", headers=scrape)
    assert response.headers["content-type"].startswith("text/plain")
    assert counter(response.text, FAMILY, route=route, status="404") == before + 1
    assert "appstack_http_request_duration_seconds_bucket" in response.text
    assert "appstack_http_requests_in_flight" in response.text


class _Envelopes(BaseHTTPRequestHandler):
    """A stand-in for Sentry's ingestion endpoint: keeps what it receives."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Envelopes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public@127.0.0.1:{server.server_address[1]}/1"
    server.shutdown()
    server.server_close()
    sentry_sdk.init(dsn=None)  # switch the client off again


def test_sentry_is_off_without_a_dsn(settings: Settings) -> None:
    assert init_sentry(settings.app.model_copy(update={"sentry_dsn": None}), component="x") is False


@pytest.fixture
def sentry_off_afterwards() -> Iterator[None]:
    """The SDK patches FastAPI for the rest of the process; afterwards it gets
    a client without a DSN that, like ours, never reads a request's body (the
    SDK's default would parse small forms ahead of the routes of later tests)."""
    yield
    sentry_sdk.init(dsn=None, max_request_body_size="never")


@pytest.mark.usefixtures("sentry_off_afterwards")
def test_sentry_dsn_sends_errors_to_sentry(settings: Settings, sentry_server: str) -> None:
    app = settings.app.model_copy(update={"sentry_dsn": sentry_server})
    assert init_sentry(app, component="api") is True
    try:
        raise RuntimeError("reported to sentry")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=5)
    assert _Envelopes.received, "no event reached the Sentry endpoint"
    path, body = _Envelopes.received[-1]
    assert path == "/api/1/envelope/"
    assert b"reported to sentry" in body
    assert b'"component":"api"' in body
    # Request bodies are never read for an event (an upload would be parsed
    # and spooled before its route runs).
    assert sentry_sdk.get_client().options["max_request_body_size"] == "never"
