"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api import metrics
from core.migrations import current_revisions

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class _Outcome:
    """One check's result: ``state`` is what production shows (``ok`` or a
    fixed word), ``detail`` what developers see and the log records."""

    state: str
    detail: str


_OK = _Outcome("ok", "ok")


async def _check(probe: Awaitable[_Outcome]) -> _Outcome:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await probe
    except TimeoutError:
        return _Outcome("timeout", f"error: no answer within {CHECK_TIMEOUT_SECONDS:g}s")
    except Exception as exc:  # any failure of a dependency is a failed check
        return _Outcome("error", f"error: {type(exc).__name__}: {exc}")


async def _database_and_migrations(request: Request) -> tuple[_Outcome, _Outcome]:
    async def probe() -> _Outcome:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await current_revisions(connection)
        expected: set[str] = request.app.state.head_revisions
        known: set[str] = request.app.state.known_revisions
        if current == expected:
            return _OK
        if current - known:
            # A revision this code has never seen: a newer release migrated
            # while this one still serves (a rolling update). Migrations are
            # additive first, so this code keeps working: stay in rotation.
            return _OK
        found = sorted(current) or "no revision"
        return _Outcome("behind", f"error: database at {found}, code expects {sorted(expected)}")

    outcome = await _check(probe())
    if outcome.state in ("ok", "behind"):
        # The database answered; the outcome is the schema's.
        return _OK, outcome
    return outcome, _Outcome("unknown", "error: unknown (database unavailable)")


async def _redis(request: Request) -> _Outcome:
    async def probe() -> _Outcome:
        await request.app.state.redis.ping()
        return _OK

    return await _check(probe())


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "A dependency is unavailable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Database answers ``SELECT 1``, Redis answers ``PING``, schema is at head.

    Each check is ``ok`` or, when it failed, in production one fixed word:
    ``error`` (the dependency raised), ``timeout`` (no answer within
    CHECK_TIMEOUT_SECONDS); for ``migrations`` also ``behind`` (the schema is
    at an older revision than the code) or ``unknown`` (the database did not
    answer). Outside production a failed check holds the error's text (the
    exception, or the revisions found and expected). Either way ``failed``
    names the failed checks, the answer is 503, and each failure is logged
    once, with its details, at WARNING.
    """
    (database, migrations), redis = await asyncio.gather(
        _database_and_migrations(request), _redis(request)
    )
    outcomes = {"database": database, "redis": redis, "migrations": migrations}
    failed = [name for name, outcome in outcomes.items() if outcome.state != "ok"]
    for name, outcome in outcomes.items():
        metrics.READINESS.labels(name).set(outcome.state == "ok")
    for name in failed:
        log.warning("readiness check %s failed: %s", name, outcomes[name].detail)
    production = request.app.state.settings.app.environment == "production"
    checks = {
        name: outcome.state if production else outcome.detail for name, outcome in outcomes.items()
    }
    body = Ready(status="unavailable" if failed else "ok", checks=checks, failed=failed)
    return JSONResponse(status_code=503 if failed else 200, content=body.model_dump())
