"""The owner's job by id, for the route clients poll while they wait
(``GET /api/v1/jobs/{id}``): one SQLAlchemy Core statement on a bare
connection, without a Session, an identity map or an ORM object, and only the
columns the API shows (never the deferred file columns). The same rows as
:func:`core.jobs.service.get`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import first_row
from core.errors import NotFound
from core.models import Job

# What a job shows (api.schemas.jobs.JobRead).
SHOWN = (
    "id",
    "kind",
    "status",
    "progress",
    "attempts",
    "counts",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
)

# Built once; compiled once, then taken from the engine's compiled cache.
_OWNED = select(*(Job.__table__.c[name] for name in SHOWN)).where(
    Job.id == bindparam("job_id"), Job.owner_id == bindparam("owner_id")
)


async def owned_row(bind: AsyncEngine | AsyncConnection, owner_id: UUID, job_id: UUID) -> Row[Any]:
    """The job's shown columns if it exists and belongs to ``owner_id``;
    another user's job is reported exactly like a missing one (404).
    ``bind``: an engine (a pooled connection is taken for the statement) or
    a connection already open."""
    params = {"job_id": job_id, "owner_id": owner_id}
    row = await first_row(bind, _OWNED, params)
    if row is None:
        raise NotFound("job not found")
    return row
