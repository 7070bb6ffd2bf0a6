"""Bodies of the jobs routes, and the 202 answer of every route that queues
a job (the items import and export too)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import URLPath

from api.schemas.common import Page
from core.models import Job, JobStatus
from core.text import StorableStr

# The name of the route that shows one job (api/jobs.py): the target of the
# ``Location`` of every 202.
GET_JOB_ROUTE = "get_job"


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
    """The 202 body for a job just queued, with its ``Location`` (the job's URL)."""
    # request.url_for(GET_JOB_ROUTE, ...) would ask every route of the app
    # for the name, each refusing with an exception (4 % of the api's CPU
    # during a burst of submits): create_app looks the path up once.
    path = URLPath(request.app.state.job_path.replace(_PLACEHOLDER, str(job.id)))
    response.headers["Location"] = str(path.make_absolute_url(base_url=request.base_url))
    return JobRead.model_validate(job)


_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def job_path(app: FastAPI) -> str:
    """The path of GET_JOB_ROUTE in ``app``, with a placeholder for the id
    that :func:`accepted` replaces (``app.state.job_path``)."""
    return str(app.url_path_for(GET_JOB_ROUTE, job_id=_PLACEHOLDER))
