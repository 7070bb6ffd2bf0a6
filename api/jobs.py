"""Jobs: the API records them, the worker runs them. Every route is scoped to
the caller's own jobs; another user's job is a 404."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import Caller, ProducerDep, ReadSession, SettingsDep, WriteSession, read_bind
from api.errors import AUTH_ERRORS, BODY_ERRORS, OWNED_RESOURCE_RESPONSES, responses
from api.schemas.common import Limit, Offset, json_response
from api.schemas.jobs import GET_JOB_ROUTE, JobPage, JobRead, PingCreate, accepted
from api.upload_gate import UploadSlots
from core.errors import ServiceUnavailable
from core.jobs import builtin, lookup, service
from core.jobs_index import JobKindName
from core.models import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
# What a client refused a download for (all slots taken) waits.
DOWNLOAD_RETRY_AFTER_SECONDS = 5


@router.post(
    "/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS),
)
async def create_ping(
    body: PingCreate,
    caller: Caller,
    session: WriteSession,
    producer: ProducerDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Queue a ping job: the worker records a reply as the job's result."""
    job = await service.enqueue(
        session, producer, owner_id=caller.id, kind=builtin.PING, payload=body.model_dump()
    )
    return accepted(job, request, response)


@router.get("", response_model=JobPage, responses=responses(*AUTH_ERRORS))
async def list_jobs(
    caller: Caller,
    session: ReadSession,
    limit: Limit = 50,
    offset: Offset = 0,
    status: JobStatus | None = None,
    kind: JobKindName | None = None,
) -> JobPage:
    """Your jobs, newest first, optionally only those of one status or kind."""
    rows, total = await service.page(
        session, caller.id, status=status, kind=kind, limit=limit, offset=offset
    )
    return JobPage.of(rows, total, limit=limit, offset=offset)


@router.get(
    "/{job_id}", name=GET_JOB_ROUTE, response_model=JobRead, responses=OWNED_RESOURCE_RESPONSES
)
async def get_job(job_id: UUID, caller: Caller, request: Request) -> Response:
    """One of your jobs: status, progress, counts and error."""
    # What clients poll while they wait: read in Core, validated once and
    # serialised once (the body FastAPI would write for this response_model).
    row = await lookup.owned_row(read_bind(request), caller.id, job_id)
    return json_response(JobRead.model_validate(row, from_attributes=True))


@router.get(
    "/{job_id}/result",
    response_model=dict[str, Any],
    responses={
        **responses(*AUTH_ERRORS, 404, 409, 410, 503),
        200: {
            "description": "The file the job produced (an export: CSV), else its result as JSON",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def get_job_result(
    job_id: UUID, caller: Caller, session: ReadSession, settings: SettingsDep, request: Request
) -> Response:
    """The result of one of your succeeded jobs: the file it produced as a
    download (an export's CSV), else its JSON result (an import's report:
    counts and the first 1,000 row errors). 409 while the job has not
    succeeded; 410 once its file has expired (RESULT_RETENTION_HOURS)."""
    outcome = await service.result(
        session, caller.id, job_id, retention_hours=settings.jobs.result_retention_hours
    )
    if isinstance(outcome, service.StoredFile):
        # Streamed one chunk per query, each in a short session of its own
        # (the route's session is closed by then): a slow client holds no
        # pooled connection while it reads, but a chunk or two of memory, so
        # a process streams at most DOWNLOADS_PER_PROCESS at once.
        slots: UploadSlots = request.app.state.download_slots
        if not slots.try_take():
            raise ServiceUnavailable(
                "too many downloads in progress on this server; retry shortly",
                retry_after=DOWNLOAD_RETRY_AFTER_SECONDS,
            )
        return _SlotStream(
            slots,
            service.read_file(request.app.state.read_sessionmaker, outcome),
            media_type=outcome.media_type,
            headers={
                "Content-Length": str(outcome.size),
                "Content-Disposition": attachment(outcome.filename),
            },
        )
    return JSONResponse(outcome)


class _SlotStream(StreamingResponse):
    """A streamed response that gives its download slot back however it
    ends: sent whole, the client gone, or an error."""

    def __init__(self, slots: UploadSlots, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back()


_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9._ -]{1,200}")


def attachment(filename: str) -> str:
    """A Content-Disposition naming ``filename`` safely: as is when it is
    plain ASCII, else an ASCII stand-in plus the UTF-8 name (RFC 6266), so
    that no name a handler chooses (quotes, line breaks) can break the header."""
    filename = filename or "result"
    if _PLAIN_FILENAME.fullmatch(filename):
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:200]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.post(
    "/{job_id}/cancel", response_model=JobRead, responses=responses(*AUTH_ERRORS, 404, 409)
)
async def cancel_job(job_id: UUID, caller: Caller, session: WriteSession) -> JobRead:
    """Cancel one of your queued or running jobs (409 once it has finished).
    A running import is rolled back: none of its rows are kept."""
    return JobRead.model_validate(await service.cancel(session, caller.id, job_id))
