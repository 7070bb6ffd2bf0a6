"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from core.migrations import current_revisions

router = APIRouter(prefix="/health", tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


class Live(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Each dependency's state; ``failed`` names those that are not ok."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
    failed: list[str]


@router.get("/live", response_model=Live)
async def live() -> Live:
    """The process is up. Touches nothing, so a slow database never restarts it."""
    return Live()


async def _check(probe: Awaitable[str]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await probe
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as exc:  # any failure of a dependency is a failed check
        return f"error: {type(exc).__name__}: {exc}"


async def _database_and_migrations(request: Request) -> tuple[str, str]:
    async def probe() -> str:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await current_revisions(connection)
        expected: set[str] = request.app.state.head_revisions
        known: set[str] = request.app.state.known_revisions
        if current == expected:
            return "ok"
        if current - known:
            # A revision this code has never seen: a newer release migrated
            # while this one still serves (a rolling update). Migrations are
            # additive first, so this code keeps working: stay in rotation.
            return "ok"
        found = sorted(current) or "no revision"
        return f"error: database at {found}, code expects {sorted(expected)}"

    outcome = await _check(probe())
    if outcome == "ok":
        return "ok", "ok"
    if outcome.startswith("error: database at"):
        return "ok", outcome
    return outcome, "error: unknown (database unavailable)"


async def _redis(request: Request) -> str:
    async def probe() -> str:
        await request.app.state.redis.ping()
        return "ok"

    return await _check(probe())


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "A dependency is unavailable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Database answers ``SELECT 1``, Redis answers ``PING``, schema is at head."""
    (database, migrations), redis = await asyncio.gather(
        _database_and_migrations(request), _redis(request)
    )
    checks = {"database": database, "redis": redis, "migrations": migrations}
    failed = [name for name, state in checks.items() if state != "ok"]
    body = Ready(status="unavailable" if failed else "ok", checks=checks, failed=failed)
    return JSONResponse(status_code=503 if failed else 200, content=body.model_dump())
