"""One JSON shape for domain errors: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.middleware import TOO_LARGE_CODE, RequestTooLarge
from core.errors import AppError


class ErrorBody(BaseModel):
    """A machine-readable code and a message for people."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every domain error response."""

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A response in the shared error shape."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestTooLarge)
    return error_response(413, TOO_LARGE_CODE, str(exc.detail), {"Connection": "close"})


def install(app: FastAPI) -> None:
    """Register the handlers for every :class:`AppError` and for oversized bodies."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestTooLarge, _too_large)


_DESCRIPTIONS = {
    401: "Missing, invalid or expired access token",
    403: "Not allowed (inactive account, or not a superuser)",
    404: "Not found (or not yours)",
    409: "Conflicts with a stored resource",
    413: "Request body too large",
    429: "Too many attempts; see Retry-After",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the domain errors a route can return."""
    result: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        result[code] = entry
    return result


# Every route that needs a token can answer these.
AUTH_ERRORS = (401, 403)
