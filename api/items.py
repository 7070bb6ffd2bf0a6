"""Items owned by the current user."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError

from api.deps import Caller, ProducerDep, ReadSession, SettingsDep, WriteSession, read_bind
from api.errors import (
    AUTH_ERRORS,
    BODY_ERRORS,
    OWNED_RESOURCE_RESPONSES,
    ErrorResponse,
    responses,
)
from api.schemas.common import Limit, Offset, json_response
from api.schemas.items import (
    ItemCreate,
    ItemPage,
    ItemRead,
    ItemSort,
    ItemUpdate,
    SearchText,
)
from api.schemas.jobs import JobRead, accepted
from api.uploads import receive_file
from core.items import lookup, service
from core.items.csvfile import UploadProblem

router = APIRouter(prefix="/api/v1/items", tags=["items"])


# The body FastAPI would document for a ``File`` parameter: the route reads
# it itself (api/uploads.py), so it is declared here.
_IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "contentMediaType": "application/octet-stream",
                        "description": "CSV: sku,name,description,price,quantity",
                    }
                },
            }
        }
    },
}
_VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}
_UPLOADS_BUSY = {
    "model": ErrorResponse,
    "description": "Too many uploads in progress on this server; see Retry-After",
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={
        **responses(*AUTH_ERRORS, *BODY_ERRORS, 415, 429),
        422: _VALIDATION_ERROR,
        503: _UPLOADS_BUSY,
    },
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def import_items(
    caller: Caller,
    session: WriteSession,
    producer: ProducerDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Queue an import of a CSV file (multipart form field ``file``). The
    header names the columns ``sku``, ``name``, ``price``, ``quantity`` and
    optionally ``description``, in any order. Each valid row creates or
    updates your item with that sku; invalid rows are skipped and listed in
    the job's report."""
    limits = settings.jobs
    header = service.HeaderLimits(limits.import_max_header_bytes, limits.import_max_columns)
    try:
        # Read only now, after the caller's session was checked; the media
        # type and header are checked on the first bytes, before the rest.
        upload = await receive_file(
            request,
            "file",
            max_bytes=limits.max_upload_bytes,
            head_bytes=header.head_bytes,
            check_head=lambda content_type, head: service.check_import_head(
                content_type, head, header
            ),
        )
        job = await service.start_import(
            session,
            producer,
            owner_id=caller.id,
            data=upload.data,
            filename=upload.filename,
            content_type=upload.content_type,
            max_bytes=limits.max_upload_bytes,
            header=header,
            file_limits=service.FileLimits.of(limits),
        )
    except UploadProblem as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "file"), "msg": str(exc), "input": None}]
        ) from None
    return accepted(job, request, response)


@router.post(
    "/export",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS, 429),
)
async def export_items(
    caller: Caller,
    session: WriteSession,
    producer: ProducerDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    q: SearchText = None,
) -> JobRead:
    """Queue an export of your items (those whose name contains ``q``, when
    given) as CSV; download it from the job's ``/result`` within
    RESULT_RETENTION_HOURS. 429 while your stored job files are at their quota."""
    job = await service.start_export(
        session,
        producer,
        owner_id=caller.id,
        q=q,
        file_limits=service.FileLimits.of(settings.jobs),
    )
    return accepted(job, request, response)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 409),
)
async def create_item(
    body: ItemCreate, caller: Caller, session: WriteSession, settings: SettingsDep
) -> ItemRead:
    """Create an item. Its sku must be new among your items, and you may own
    at most ``MAX_ITEMS_PER_USER`` items (403 ``quota_exceeded`` beyond)."""
    max_items = settings.jobs.max_items_per_user
    item = await service.create(session, caller.id, body.model_dump(), max_items=max_items)
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage, responses=responses(*AUTH_ERRORS))
async def list_items(
    caller: Caller,
    session: ReadSession,
    settings: SettingsDep,
    limit: Limit = 50,
    offset: Offset = 0,
    q: SearchText = None,
    sort: ItemSort = "-created_at",
) -> ItemPage:
    """Your items, filtered by ``q`` (case-insensitive, within the name) and sorted
    by ``created_at``, ``name`` or ``price`` (prefix ``-`` for descending).
    ``total`` counts the matches up to ITEMS_TOTAL_CAP, or to the end of this
    page if further; ``total_capped`` says that more match."""
    listed = await service.page(
        session,
        caller.id,
        limit=limit,
        offset=offset,
        q=q,
        sort=sort,
        total_cap=settings.jobs.items_total_cap,
    )
    return ItemPage.of_listing(listed, limit=limit, offset=offset)


@router.get("/{item_id}", response_model=ItemRead, responses=OWNED_RESOURCE_RESPONSES)
async def get_item(item_id: UUID, caller: Caller, request: Request) -> Response:
    """One of your items."""
    # The hottest route: read in Core, validated once and serialised once
    # (the body FastAPI would write for this response_model, byte for byte).
    row = await lookup.owned_row(read_bind(request), caller.id, item_id)
    return json_response(ItemRead.model_validate(row, from_attributes=True))


@router.patch(
    "/{item_id}", response_model=ItemRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 404, 409)
)
async def update_item(
    item_id: UUID, body: ItemUpdate, caller: Caller, session: WriteSession
) -> ItemRead:
    """Change some fields of one of your items."""
    item = await service.update(session, caller.id, item_id, body.model_dump(exclude_unset=True))
    return ItemRead.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=OWNED_RESOURCE_RESPONSES,
    response_class=Response,
)
async def delete_item(item_id: UUID, caller: Caller, session: WriteSession) -> Response:
    """Delete one of your items."""
    await service.delete(session, caller.id, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
