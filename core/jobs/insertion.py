"""A new job's INSERT (:func:`create`, also ``core.jobs.repository.create``).
No commits here: the session's owner commits."""

from __future__ import annotations

import functools
from typing import Any, cast
from uuid import UUID, uuid4

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql.dml import ReturningInsert

from core.jobs import files
from core.models import Job, JobFileRole, JobStatus


@functools.cache
def _insert_statement(names: tuple[str, ...]) -> ReturningInsert[Any]:
    """The INSERT of :func:`create` (of the columns ``names``; the others take
    their defaults), built once with parameters, on the table: the ORM's
    flush (its unit of work, an INSERT of every column) took about a seventh
    of the api's Python time per submitted job."""
    columns = Job.__table__.c
    values = {name: bindparam(name, type_=columns[name].type) for name in names}
    loaded = [c for c in columns if c.key not in ("input_file", "result_file")]  # not deferred
    return insert(cast(Table, Job.__table__)).values(values).returning(*loaded)


async def create(
    session: AsyncSession,
    *,
    owner_id: UUID,
    kind: str,
    payload: dict[str, Any],
    input_file: bytes | None = None,
    request_id: str | None = None,
    trace_context: dict[str, str] | None = None,
) -> Job:
    """Insert a queued job; ``input_file`` is stored with it, in chunks
    (:mod:`core.jobs.files`). Returns the job as stored (its defaults too),
    in the session as if it had been read."""
    parameters = {
        "id": uuid4(),
        "owner_id": owner_id,
        "kind": kind,
        "status": JobStatus.queued,
        "payload": payload,
        "input_bytes": len(input_file) if input_file else 0,
        "request_id": request_id,
        "trace_context": trace_context,
    }
    row = (await session.execute(_insert_statement(tuple(parameters)), parameters)).one()
    job = Job(**row._asdict())
    make_transient_to_detached(job)
    session.add(job)
    if input_file:
        await files.store(session, job.id, JobFileRole.input, input_file)
    return job
