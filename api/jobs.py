"""Jobs: the API records them, the worker runs them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, ProducerDep, SessionDep
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.validation import StorableStr
from core.jobs import service
from core.models import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobRead(BaseModel):
    """A job as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str
    status: JobStatus
    progress: int
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PingCreate(BaseModel):
    """Input of a ping job."""

    model_config = ConfigDict(extra="forbid")

    message: StorableStr = Field(default="pong", max_length=200)


@router.post(
    "/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS),
)
async def create_ping(
    body: PingCreate,
    user: CurrentUser,
    session: SessionDep,
    producer: ProducerDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Queue a ping job: the worker records a reply in the job's result."""
    job = await service.enqueue(
        session, producer, kind="ping", payload=body.model_dump(), owner_id=user.id
    )
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    return JobRead.model_validate(job)


@router.get("/{job_id}", response_model=JobRead, responses=responses(*AUTH_ERRORS, 404))
async def get_job(job_id: UUID, user: CurrentUser, session: SessionDep) -> JobRead:
    """One of your jobs: status and result."""
    return JobRead.model_validate(await service.get(session, job_id, owner_id=user.id))
