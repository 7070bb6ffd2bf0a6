"""One JSON shape for domain errors: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.errors import AppError


class ErrorBody(BaseModel):
    """A machine-readable code and a message for people."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every domain error response."""

    error: ErrorBody


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    body = ErrorResponse(error=ErrorBody(code=exc.code, message=exc.message))
    return JSONResponse(status_code=exc.status_code, content=body.model_dump())


def install(app: FastAPI) -> None:
    """Register the handler for every :class:`AppError`."""
    app.add_exception_handler(AppError, _app_error)


def responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries for the domain errors a route can return."""
    return {code: {"model": ErrorResponse} for code in codes}
