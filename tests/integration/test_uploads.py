"""Uploads against a real server (uvicorn on a local port, the production
HTTP parser), with raw sockets where it matters when the answer comes: the
token and a free upload slot are checked before the body is read, a bad
header is refused on the first bytes of the file, and the slots are given
back however a request ends."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from api.main import IMPORT_PATH, create_app
from api.upload_gate import UploadSlots
from core.db import create_sessionmaker, transaction
from core.models import User
from core.settings import Settings
from tests.integration.conftest import PASSWORD

BOUNDARY = "upload-test-boundary"
HEADER = b"sku,name,description,price,quantity\n"
MiB = 1024 * 1024


@dataclass
class Live:
    """An app served on ``port``, and a user's Authorization header."""

    app: FastAPI
    port: int
    authorization: str

    @property
    def slots(self) -> UploadSlots:
        slots: UploadSlots = self.app.state.upload_slots
        return slots

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[int]:
    """``app`` (its lifespan run here) served by uvicorn with the HTTP parser
    production uses, on a free local port; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="httptools",
        ws="none",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await eventually(lambda: server.started)
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
            await task
            sock.close()


@asynccontextmanager
async def live_app(settings: Settings, engine: AsyncEngine, **jobs: Any) -> AsyncIterator[Live]:
    """A real server of an app whose job settings are changed by ``jobs``, on
    its own engine (it commits for real), and a user registered through it,
    deleted at the end with all they made."""
    app = create_app(settings.model_copy(update={"jobs": settings.jobs.model_copy(update=jobs)}))
    email = f"uploader-{uuid.uuid4().hex[:12]}@example.com"
    try:
        async with served(app) as port:
            live = Live(app, port, "")
            async with live.client() as client:
                registered = await client.post(
                    "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                )
                assert registered.status_code == 201, registered.text
                login = await client.post(
                    "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
            live.authorization = f"Bearer {login.json()['access_token']}"
            yield live
    finally:
        async with create_sessionmaker(engine)() as session, transaction(session):
            await session.execute(delete(User).where(User.email == email))


@pytest.fixture
async def live(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Live]:
    async with live_app(settings, engine) as live:
        yield live


def multipart(content: bytes, *, content_type: str = "text/csv") -> bytes:
    """A multipart body with ``content`` as its one file, named ``file``."""
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="items.csv"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def request_head(length: int, authorization: str | None) -> bytes:
    """The request line and headers of an upload of ``length`` bytes."""
    lines = [
        f"POST {IMPORT_PATH} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {length}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rows(size: int) -> bytes:
    """A valid CSV file of at least ``size`` bytes."""
    row = b"sku-%07d,Mug,,1.00,1\n"  # 24 bytes
    return HEADER + b"".join(row % n for n in range(size // 24 + 1))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RawUpload:
    """An upload over its own connection, sent piece by piece."""

    def __init__(self, port: int, body: bytes, authorization: str | None) -> None:
        self.port = port
        self.body = body
        self.authorization = authorization
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self, first: int) -> None:
        """Send the headers and the first ``first`` bytes of the body."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(request_head(len(self.body), self.authorization))
        await self.send(first)

    async def send(self, size: int | None = None) -> None:
        """Send ``size`` more bytes of the body (all the rest: None)."""
        assert self.writer is not None
        end = len(self.body) if size is None else min(len(self.body), self.sent + size)
        self.writer.write(self.body[self.sent : end])
        self.sent = end
        await self.writer.drain()

    async def answer(self) -> Answer:
        """The response (within 10 s)."""
        assert self.reader is not None
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers["content-length"]))
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Whether the server closed the connection (end of stream)."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(5):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def forged_token(settings: Settings) -> str:
    """A well-formed access token signed with another key."""
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "iat": now, "exp": now + 600}
    return jwt.encode(claims, "another key " + "x" * 40, algorithm="HS256")


def expired_token(settings: Settings) -> str:
    """A token signed with the right key that expired a minute ago."""
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "iat": now - 120, "exp": now - 60}
    return jwt.encode(claims, settings.app.secret_key, algorithm="HS256")


AUTHORIZATIONS: list[Callable[[Settings], str | None]] = [
    lambda _: None,
    lambda _: "Bearer",
    lambda _: "Bearer not-a-token",
    lambda _: "Basic dXNlcjpwYXNz",
    lambda s: f"Bearer {forged_token(s)}",
    lambda s: f"Bearer {expired_token(s)}",
]


@pytest.mark.parametrize(
    "authorization",
    AUTHORIZATIONS,
    ids=["none", "empty", "garbage", "basic", "forged", "expired"],
)
async def test_an_upload_without_a_valid_token_is_refused_before_its_body_is_sent(
    live: Live, settings: Settings, authorization: Callable[[Settings], str | None]
) -> None:
    body = multipart(rows(3 * MiB))
    upload = RawUpload(live.port, body, authorization(settings))
    try:
        await upload.start(first=4096)
        answer = await upload.answer()
        # Answered with 4 KiB of the 3 MiB sent, and the connection closed.
        assert upload.sent == 4096
        assert len(body) > 3 * MiB
        assert answer.status == 401, answer
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.headers["connection"] == "close"
        assert answer.body == (
            b'{"error":{"code":"not_authenticated","message":"missing or invalid access token"}}'
        )
        assert await upload.closed_by_server()
    finally:
        await upload.close()
    assert live.slots.active == 0


async def test_a_valid_token_uploads_a_large_file(live: Live) -> None:
    """Sent slowly over a raw connection, then by an ordinary client."""
    body = multipart(rows(3 * MiB))
    upload = RawUpload(live.port, body, live.authorization)
    try:
        await upload.start(first=4096)
        await eventually(lambda: live.slots.active == 1)
        await upload.send()
        answer = await upload.answer()
        assert answer.status == 202, answer
        # Read whole: the connection stays open for the next request.
        assert answer.headers.get("connection") != "close"
    finally:
        await upload.close()
    async with live.client() as client:
        response = await client.post(
            IMPORT_PATH,
            files={"file": ("items.csv", rows(3 * MiB), "text/csv")},
            headers={"Authorization": live.authorization},
        )
        assert response.status_code == 202, response.text
        job = (
            await client.get(
                response.headers["location"], headers={"Authorization": live.authorization}
            )
        ).json()
        assert job["status"] == "queued"
    await eventually(lambda: live.slots.active == 0)


async def test_a_megabyte_header_is_a_short_422_before_the_rest_is_sent(live: Live) -> None:
    header = b",".join([b"sku,name,price,quantity", *(b"c%07d" % n for n in range(120_000))])
    assert len(header) > MiB
    body = multipart(header + b"\n" + rows(MiB))
    upload = RawUpload(live.port, body, live.authorization)
    try:
        await upload.start(first=16 * 1024)
        answer = await upload.answer()
        assert answer.status == 422, answer
        assert len(answer.body) < 200
        assert b"CSV header (the first line) is longer than 4096 bytes" in answer.body
        assert upload.sent == 16 * 1024
        # Refused before the rest was read: the server stops reading it.
        assert answer.headers["connection"] == "close"
        assert await upload.closed_by_server()
    finally:
        await upload.close()
    # Sent whole, by an ordinary client: the same short answer.
    async with live.client() as client:
        response = await client.post(
            IMPORT_PATH,
            files={"file": ("items.csv", header + b"\na,b,,1,1\n", "text/csv")},
            headers={"Authorization": live.authorization},
        )
    assert response.status_code == 422
    assert len(response.content) < 200
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    await eventually(lambda: live.slots.active == 0)


async def test_a_wrong_media_type_is_a_415_on_the_first_bytes(live: Live) -> None:
    upload = RawUpload(
        live.port, multipart(rows(MiB), content_type="image/png"), live.authorization
    )
    try:
        await upload.start(first=16 * 1024)
        answer = await upload.answer()
        assert answer.status == 415
        assert answer.headers["connection"] == "close"
        assert await upload.closed_by_server()
    finally:
        await upload.close()


async def slots_free_and_an_upload_accepted(live: Live) -> None:
    """Every slot is given back, and a new upload is accepted."""
    await eventually(lambda: live.slots.active == 0)
    async with live.client() as client:
        again = await client.post(
            IMPORT_PATH,
            files={"file": ("items.csv", rows(1000), "text/csv")},
            headers={"Authorization": live.authorization},
        )
    assert again.status_code == 202, again.text


async def hold(live: Live, count: int) -> list[RawUpload]:
    """``count`` valid uploads, their first bytes sent, holding their slots."""
    held = []
    for _ in range(count):
        upload = RawUpload(live.port, multipart(rows(MiB)), live.authorization)
        held.append(upload)
        await upload.start(first=8 * 1024)
    await eventually(lambda: live.slots.active == count)
    return held


async def test_uploads_past_the_per_process_limit_are_503_until_a_slot_frees(
    settings: Settings, engine: AsyncEngine
) -> None:
    async with live_app(settings, engine, uploads_per_process=2) as live:
        held = await hold(live, 2)
        extra = RawUpload(live.port, multipart(rows(MiB)), live.authorization)
        try:
            await extra.start(first=4096)
            started = time.monotonic()
            answer = await extra.answer()
            assert time.monotonic() - started < 5  # at once, not after a held one ends
            assert answer.status == 503, answer
            assert answer.headers["retry-after"] == "5"
            assert answer.headers["connection"] == "close"
            assert b'"code":"service_unavailable"' in answer.body
            assert await extra.closed_by_server()
            assert live.slots.active == 2
            # An anonymous upload is a 401 first: it never takes (or waits for) a slot.
            anonymous = RawUpload(live.port, multipart(rows(MiB)), None)
            await anonymous.start(first=4096)
            assert (await anonymous.answer()).status == 401
            await anonymous.close()
            for upload in held:
                await upload.send()
                assert (await upload.answer()).status == 202
        finally:
            for upload in [*held, extra]:
                await upload.close()
        await slots_free_and_an_upload_accepted(live)
        assert live.slots.active == 0


Ending = Callable[[RawUpload], Awaitable[int | None]]


async def client_gone(upload: RawUpload) -> None:
    await upload.close()


async def rest_sent(upload: RawUpload) -> int:
    await upload.send()
    return (await upload.answer()).status


@pytest.mark.parametrize(
    ("ending", "body", "status"),
    [
        (client_gone, multipart(rows(50_000)), None),
        (rest_sent, multipart(rows(120_000)), 413),  # the file past its limit
        (rest_sent, multipart(b"sku,name\n" + rows(50_000)), 422),
        (rest_sent, multipart(rows(50_000))[:-40], 400),  # the body ends inside the file
    ],
    ids=["client-gone", "file-too-large", "bad-header", "truncated"],
)
async def test_a_slot_is_given_back_however_the_upload_ends(
    settings: Settings, engine: AsyncEngine, ending: Ending, body: bytes, status: int | None
) -> None:
    async with live_app(settings, engine, uploads_per_process=1, max_upload_bytes=100_000) as live:
        upload = RawUpload(live.port, body, live.authorization)
        try:
            await upload.start(first=512)
            await eventually(lambda: live.slots.active == 1)
            assert await ending(upload) == status
        finally:
            await upload.close()
        await slots_free_and_an_upload_accepted(live)


async def test_a_stalled_upload_is_dropped_and_frees_its_slot(
    settings: Settings, engine: AsyncEngine
) -> None:
    """A client that holds its slot and sends nothing more (slow loris) is
    answered 408 after UPLOAD_IDLE_SECONDS; its slot is free again."""
    async with live_app(settings, engine, uploads_per_process=1, upload_idle_seconds=1) as live:
        stalled = RawUpload(live.port, multipart(rows(MiB)), live.authorization)
        try:
            await stalled.start(first=8 * 1024)
            await eventually(lambda: live.slots.active == 1)
            answer = await stalled.answer()
            assert answer.status == 408, answer
            assert b'"code":"request_timeout"' in answer.body
        finally:
            await stalled.close()
        await slots_free_and_an_upload_accepted(live)


async def test_a_logged_out_token_is_refused_by_the_route_before_the_body(live: Live) -> None:
    """The gate checks the signature and expiry; the route still checks the
    session, and now also before it reads the body."""
    async with live.client() as client:
        out = await client.post(
            "/api/v1/auth/logout", headers={"Authorization": live.authorization}
        )
        assert out.status_code == 204
    upload = RawUpload(live.port, multipart(rows(3 * MiB)), live.authorization)
    try:
        await upload.start(first=4096)
        answer = await upload.answer()
        assert answer.status == 401, answer
        assert b'"code":"not_authenticated"' in answer.body
        assert answer.headers["connection"] == "close"
    finally:
        await upload.close()
    await eventually(lambda: live.slots.active == 0)
