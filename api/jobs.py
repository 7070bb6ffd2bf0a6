"""Jobs: the API records them, the worker runs them. Every route is scoped to
the caller's own jobs; another user's job is a 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, ProducerDep, SessionDep
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.validation import Limit, Offset, Page, StorableStr
from core.jobs import repository, service
from core.models import Job, JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobRead(BaseModel):
    """A job as the API shows it. The result itself is at ``/result``."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str
    status: JobStatus
    progress: int = Field(description="0-100")
    attempts: int = Field(description="Runs started so far")
    counts: dict[str, int] = Field(description="Row counts, e.g. created/updated/skipped")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class JobPage(Page[JobRead]):
    """A page of jobs and how many match in all."""


class PingCreate(BaseModel):
    """Input of a ping job."""

    model_config = ConfigDict(extra="forbid")

    message: StorableStr = Field(default="pong", max_length=200)


def accepted(job: Job, request: Request, response: Response) -> JobRead:
    """A 202 body for a new job, with its ``Location``."""
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    return JobRead.model_validate(job)


NOT_FOUND = responses(*AUTH_ERRORS, 404)


@router.post(
    "/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS),
)
async def create_ping(
    body: PingCreate,
    user: Caller,
    session: SessionDep,
    producer: ProducerDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Queue a ping job: the worker records a reply as the job's result."""
    job = await service.enqueue(
        session, producer, owner_id=user.id, kind=service.PING, payload=body.model_dump()
    )
    return accepted(job, request, response)


@router.get("", response_model=JobPage, responses=responses(*AUTH_ERRORS))
async def list_jobs(
    user: Caller,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: JobStatus | None = None,
    kind: Annotated[StorableStr | None, Query(max_length=64)] = None,
) -> JobPage:
    """Your jobs, newest first, optionally only those of one status or kind."""
    rows, total = await repository.page(
        session, user.id, limit=limit, offset=offset, status=status, kind=kind
    )
    return JobPage(
        items=[JobRead.model_validate(j) for j in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobRead, responses=NOT_FOUND)
async def get_job(job_id: UUID, user: Caller, session: SessionDep) -> JobRead:
    """One of your jobs: status, progress, counts and error."""
    return JobRead.model_validate(await service.get(session, user.id, job_id))


@router.get(
    "/{job_id}/result",
    response_model=dict[str, Any],
    responses={
        **responses(*AUTH_ERRORS, 404, 409),
        200: {
            "description": "An export's CSV file, or another job's result as JSON",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def get_job_result(job_id: UUID, user: Caller, session: SessionDep) -> Response:
    """The result of one of your succeeded jobs: an export as a CSV download,
    an import's report (counts and the first 1,000 row errors) as JSON.
    409 while the job has not succeeded."""
    outcome = await service.result(session, user.id, job_id)
    if isinstance(outcome, service.ResultFile):
        return Response(
            outcome.content,
            media_type=outcome.media_type,
            headers={"Content-Disposition": f'attachment; filename="{outcome.filename}"'},
        )
    return JSONResponse(outcome)


@router.post(
    "/{job_id}/cancel", response_model=JobRead, responses=responses(*AUTH_ERRORS, 404, 409)
)
async def cancel_job(job_id: UUID, user: Caller, session: SessionDep) -> JobRead:
    """Cancel one of your queued or running jobs (409 once it has finished).
    A running import is rolled back: none of its rows are kept."""
    return JobRead.model_validate(await service.cancel(session, user.id, job_id))
