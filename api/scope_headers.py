"""What a pure ASGI middleware reads from a request's headers before any
route (and before its body)."""

from __future__ import annotations

from starlette.types import Scope


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, unchecked."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above 0, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
