"""One JSON shape for domain errors: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from core.db import connection_lost, sqlstate, statement_cancelled
from core.errors import AppError

log = logging.getLogger(__name__)

TOO_LARGE_CODE = "request_too_large"


def too_large_message(limit: int) -> str:
    """What a 413 says."""
    return f"request body is larger than the limit of {limit} bytes"


class ErrorBody(BaseModel):
    """A machine-readable code and a message for people."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every domain error response."""

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A response in the shared error shape."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


_HTTP_CODES = {
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: TOO_LARGE_CODE,
}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    # Errors raised by the framework itself (a body that is not JSON, an
    # unknown path, an oversized body) in the same shape as domain errors.
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = (
        "request body could not be parsed as its Content-Type says "
        "(malformed JSON or form data, or not UTF-8)"
        if code == "malformed_body"
        else str(exc.detail)
    )
    return error_response(exc.status_code, code, message, exc.headers)


def _unavailable(service: str | None) -> JSONResponse:
    named = f" ({service})" if service else ""
    return error_response(
        503,
        "service_unavailable",
        f"a backing service{named} is unavailable; retry shortly",
        {"Retry-After": "5"},
    )


async def _redis_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Redis still unreachable after the client's retries: the request can be
    # retried later, so say so instead of answering a bare 500.
    log.warning("redis unavailable: %s", exc)
    return _unavailable("redis")


_FOREIGN_KEY_VIOLATION = "23503"


async def _database_error(request: Request, exc: Exception) -> Response:
    # Postgres down, or a pooled connection that died with a restart (the
    # pool is then invalidated, and the next request connects afresh): a 503
    # the client can retry. A row the request refers to deleted meanwhile (an
    # account removed within AUTH_CACHE_SECONDS of its last request): a 409.
    # Any other database error is a bug: a 500.
    assert isinstance(exc, DBAPIError)
    if connection_lost(exc):
        log.warning("database unavailable: %s", exc.orig or exc)
        return _unavailable("database")
    if statement_cancelled(exc):
        # Past DB_STATEMENT_TIMEOUT_SECONDS: the database is too busy (or the
        # query too slow) for now; the client may retry later.
        log.warning("statement cancelled (DB_STATEMENT_TIMEOUT_SECONDS): %s", exc.orig or exc)
        return _unavailable("database")
    if isinstance(exc, IntegrityError) and sqlstate(exc) == _FOREIGN_KEY_VIOLATION:
        log.warning("reference gone: %s", exc.orig)
        return error_response(
            409, "conflict", "a record this request refers to (your account?) no longer exists"
        )
    raise exc


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    # The input pydantic refused is echoed back, but JSON cannot carry every
    # value Python's json module reads (NaN, Infinity, lone surrogates): such
    # an input is shown as its repr, which can.
    try:
        json.dumps(error, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        error = {**error, "input": repr(error.get("input"))[:200]}
        error.pop("ctx", None)
    return error


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own 422 shape, with every input made writable.
    assert isinstance(exc, RequestValidationError)
    detail = [_json_safe(error) for error in jsonable_encoder(exc.errors())]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _pool_exhausted(_: Request, exc: Exception) -> JSONResponse:
    # SQLAlchemy's "QueuePool limit ... reached, connection timed out": every
    # pooled connection stayed busy for DB_POOL_TIMEOUT. Overload, not a bug.
    log.warning("database pool exhausted: %s", exc)
    return _unavailable("database")


async def _unreachable(_: Request, exc: Exception) -> JSONResponse:
    # A raw socket error or timeout does not say whose it was (asyncpg's
    # connect, but also any other client without its own error types): the
    # answer names no service, the log has the exception and its origin.
    log.warning("backing service unreachable", exc_info=exc)
    return _unavailable(None)


def install(app: FastAPI) -> None:
    """Render :class:`AppError`, HTTP errors and an unreachable Redis or
    database in the one error shape."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _pool_exhausted)
    # Raw socket errors when no connection can be opened at all (asyncpg's
    # own; Redis and the broker wrap theirs): refused, reset, the host name
    # gone (a stopped container), a timeout.
    for error in (ConnectionError, socket.gaierror, TimeoutError):
        app.add_exception_handler(error, _unreachable)


_DESCRIPTIONS = {
    400: "Malformed body (not JSON or form data as its Content-Type says, or not UTF-8)",
    401: "Missing, invalid or expired access token",
    403: "Not allowed (inactive account, not a superuser, or a quota only you can free)",
    404: "Not found (or not yours)",
    409: "Conflicts with a stored resource",
    410: "Gone: deleted after its retention period (an expired job result)",
    413: "Request body too large",
    415: "Unsupported media type (not a CSV file)",
    503: "Busy or a backing service unavailable; see Retry-After",
    429: "Too many requests (rate limit, login attempts or a per-user quota); see Retry-After",
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


# Every route that needs a token can answer these (429: the request rate
# limits of api/ratelimit.py, which also answer the public routes).
AUTH_ERRORS = (401, 403, 429)
# Every route that reads a JSON body can answer these.
BODY_ERRORS = (400, 413)
# Every route on one resource the caller owns (an item, a job) can answer
# these: another user's resource is a 404, exactly like a missing one.
OWNED_RESOURCE_RESPONSES = responses(*AUTH_ERRORS, 404)
