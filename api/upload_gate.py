"""The gate of the upload route: who may send a body, and how many at once,
decided before a byte of the body is read.

FastAPI reads a ``File`` parameter's body before the route's dependencies
run (the token check among them). The import route reads its own body, after
them (api/uploads.py); this pure ASGI middleware puts a check first whatever
the route does, and without a database round trip: the bearer token's
signature and expiry (``api.deps.token_claims``, through this process's token
cache), then takes one of UPLOADS_PER_PROCESS slots. A refusal says
``Connection: close``, so the server stops reading and the client stops
sending; so does any answer the route gives before the whole body arrived
(413, 415, a 422 header, a revoked session, a quota), for the same reason.
The route still checks the token's session (revocation).
"""

from __future__ import annotations

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import oauth2_scheme, token_claims
from api.errors import error_response
from core.errors import AppError, NotAuthenticated, ServiceUnavailable

# What a client told to come back later waits: an upload takes seconds.
RETRY_AFTER_SECONDS = 5


class UploadSlots:
    """How many uploads this process is reading; at most ``limit``. One
    event loop per process, so a plain counter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_take(self) -> bool:
        """Take a slot if one is free."""
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def give_back(self) -> None:
        """Free a slot taken with :meth:`try_take`."""
        self.active -= 1


class UploadGate:
    """For POSTs to ``path``: 401 without a valid bearer token, 503 with
    ``Retry-After`` when ``slots`` are all taken, both without reading the
    body. A slot is held until the request ends, however it ends (an error,
    the client gone, or ``idle_seconds`` without a byte: 408)."""

    def __init__(
        self, app: ASGIApp, *, path: str, slots: UploadSlots, idle_seconds: float = 15.0
    ) -> None:
        self.app = app
        self.path = path
        self.slots = slots
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Without ``receive``: reading the body here would raise.
        request = Request(scope)
        try:
            token_claims(request, await oauth2_scheme(request))
        except NotAuthenticated as exc:
            await _refuse(exc, scope, receive, send)
            return
        if not self.slots.try_take():
            busy = ServiceUnavailable(
                "too many uploads in progress on this server; retry shortly",
                retry_after=RETRY_AFTER_SECONDS,
            )
            await _refuse(busy, scope, receive, send)
            return
        body = _BodyProgress()
        try:
            await self.app(scope, self._timed(body.tracking(receive)), body.closing(send))
        finally:
            self.slots.give_back()

    def _timed(self, receive: Receive) -> Receive:
        """``receive`` that gives up when the client sends nothing for
        ``idle_seconds``: a slot is never held by a client that stalls."""

        async def timed_receive() -> Message:
            try:
                with anyio.fail_after(self.idle_seconds):
                    return await receive()
            except TimeoutError:
                raise UploadStalled(self.idle_seconds) from None

        return timed_receive


class _BodyProgress:
    """Whether the request's body has been read to its end, and a ``send``
    that closes the connection when the answer comes before that: a server
    that keeps the connection would have to read (uvicorn: discard) the rest
    of an upload it has already refused."""

    def __init__(self) -> None:
        self.done = False

    def tracking(self, receive: Receive) -> Receive:
        async def tracked() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.done = True
            return message

        return tracked

    def closing(self, send: Send) -> Send:
        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not self.done:
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return closing_send


class UploadStalled(HTTPException):
    """The client stopped sending its upload. An HTTPException, so that the
    route's body reading lets it through and ``api.errors`` renders a 408."""

    def __init__(self, idle_seconds: float) -> None:
        super().__init__(
            status_code=408,
            detail=f"the upload stalled: nothing received for {idle_seconds:g} seconds",
            headers={"Connection": "close"},
        )


async def _refuse(error: AppError, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {**error.headers, "Connection": "close"}
    response = error_response(error.status_code, error.code, error.message, headers)
    await response(scope, receive, send)
