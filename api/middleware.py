"""Pure ASGI middleware: request size limit and security headers."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import TOO_LARGE_CODE, error_response, too_large_message
from api.scope_headers import has_body


class RequestTooLarge(HTTPException):
    """The body went past the limit while it was being read. An HTTPException,
    so that FastAPI's body parsing lets it through instead of turning it into
    a 400; ``api.errors`` renders it in the shared error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodySizeLimit:
    """Answer 413 to a body larger than ``max_bytes``: at once when the
    Content-Length says so, else as soon as the streamed body goes past it,
    without ever holding more than the limit in memory. ``per_path`` gives
    some paths (uploads) their own limit."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, *, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            # No Content-Length above 0 and not chunked: no body to limit
            # (most GETs), and no wrapping of receive and send to pay for.
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope["path"], self.default_max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await self._reject(max_bytes, scope, receive, send)
                    return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise RequestTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if started:
                raise
            await self._reject(max_bytes, scope, receive, send)

    async def _reject(self, max_bytes: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, TOO_LARGE_CODE, too_large_message(max_bytes), {"Connection": "close"}
        )
        await response(scope, receive, send)


_API_CSP = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeaders:
    """Headers every response carries. The strict CSP is left off the docs
    pages, which load Swagger UI's scripts."""

    def __init__(self, app: ASGIApp, *, hsts: bool, docs_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.hsts = hsts
        self.docs_prefixes = docs_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(self.docs_prefixes)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
                if not is_docs:
                    headers.append((b"content-security-policy", _API_CSP))
                if self.hsts:
                    headers.append(
                        (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
