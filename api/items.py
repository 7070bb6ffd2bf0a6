"""Items owned by the current user."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import anyio
from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import Caller, ProducerDep, SessionDep, SettingsDep
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.jobs import JobRead, accepted
from api.validation import Limit, Offset, Page, StorableStr
from core.errors import PayloadTooLarge, UnsupportedMediaType
from core.items import fields, service, transfer
from core.items.repository import SortKey
from core.jobs import service as jobs

router = APIRouter(prefix="/api/v1/items", tags=["items"])

Sku = Annotated[
    str, Field(min_length=1, max_length=fields.SKU_MAX_LENGTH, pattern=fields.SKU_PATTERN)
]
Name = Annotated[StorableStr, Field(min_length=1, max_length=fields.NAME_MAX_LENGTH)]
Description = Annotated[StorableStr, Field(max_length=fields.DESCRIPTION_MAX_LENGTH)]
# Numeric(12, 2) in the database; exact, and a string in JSON.
Price = Annotated[
    Decimal,
    Field(
        ge=0,
        le=fields.PRICE_MAX,
        decimal_places=fields.PRICE_DECIMAL_PLACES,
        allow_inf_nan=False,
    ),
]
Quantity = Annotated[int, Field(ge=0, le=fields.QUANTITY_MAX)]


class ItemCreate(BaseModel):
    """A new item."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity


class ItemUpdate(BaseModel):
    """A partial update; omitted fields keep their value. Only ``description``
    may be set to null."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    quantity: Quantity | None = None

    @model_validator(mode="after")
    def _no_nulls_for_required(self) -> ItemUpdate:
        nulled = [
            name
            for name in self.model_fields_set
            if name != "description" and getattr(self, name) is None
        ]
        if nulled:
            raise ValueError(f"{', '.join(sorted(nulled))} cannot be null")
        return self


class ItemRead(BaseModel):
    """An item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    quantity: int
    created_at: datetime
    updated_at: datetime


class ItemPage(Page[ItemRead]):
    """A page of items and how many match in all."""


NOT_FOUND = responses(*AUTH_ERRORS, 404)
SearchText = Annotated[StorableStr | None, Query(min_length=1, max_length=200)]


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 415),
)
async def import_items(
    file: Annotated[UploadFile, File(description="CSV: sku,name,description,price,quantity")],
    user: Caller,
    session: SessionDep,
    producer: ProducerDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Queue an import of a CSV file. The header names the columns ``sku``,
    ``name``, ``price``, ``quantity`` and optionally ``description``, in any
    order. Each valid row creates or updates your item with that sku; invalid
    rows are skipped and listed in the job's report."""
    if file.content_type and file.content_type.split(";")[0].strip().lower() not in (
        transfer.CSV_MEDIA_TYPES
    ):
        raise UnsupportedMediaType(
            f"expected a CSV file (text/csv), got {file.content_type[:100]!r}"
        )
    limit = settings.jobs.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"file is larger than the limit of {limit} bytes")
    try:
        await anyio.to_thread.run_sync(transfer.inspect_upload, data)
    except transfer.UploadProblem as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "file"), "msg": str(exc), "input": None}]
        ) from None
    job = await jobs.enqueue(
        session,
        producer,
        owner_id=user.id,
        kind=transfer.IMPORT,
        # Printable characters only: Postgres's JSONB refuses NUL.
        payload={
            "filename": "".join(filter(str.isprintable, file.filename or ""))[:200],
            "bytes": len(data),
        },
        input_file=data,
    )
    return accepted(job, request, response)


@router.post(
    "/export",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(*AUTH_ERRORS),
)
async def export_items(
    user: Caller,
    session: SessionDep,
    producer: ProducerDep,
    request: Request,
    response: Response,
    q: SearchText = None,
) -> JobRead:
    """Queue an export of your items (those whose name contains ``q``, when
    given) as CSV; download it from the job's ``/result``."""
    job = await jobs.enqueue(
        session, producer, owner_id=user.id, kind=transfer.EXPORT, payload={"q": q}
    )
    return accepted(job, request, response)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 409),
)
async def create_item(body: ItemCreate, user: Caller, session: SessionDep) -> ItemRead:
    """Create an item. Its sku must be new among your items."""
    item = await service.create(session, user.id, body.model_dump())
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage, responses=responses(*AUTH_ERRORS))
async def list_items(
    user: Caller,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    q: SearchText = None,
    sort: SortKey = "-created_at",
) -> ItemPage:
    """Your items, filtered by ``q`` (case-insensitive, within the name) and sorted
    by ``created_at``, ``name`` or ``price`` (prefix ``-`` for descending)."""
    rows, total = await service.page(session, user.id, limit=limit, offset=offset, q=q, sort=sort)
    return ItemPage(
        items=[ItemRead.model_validate(i) for i in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{item_id}", response_model=ItemRead, responses=NOT_FOUND)
async def get_item(item_id: UUID, user: Caller, session: SessionDep) -> ItemRead:
    """One of your items."""
    return ItemRead.model_validate(await service.get(session, user.id, item_id))


@router.patch(
    "/{item_id}", response_model=ItemRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 404, 409)
)
async def update_item(
    item_id: UUID, body: ItemUpdate, user: Caller, session: SessionDep
) -> ItemRead:
    """Change some fields of one of your items."""
    item = await service.update(session, user.id, item_id, body.model_dump(exclude_unset=True))
    return ItemRead.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    response_class=Response,
)
async def delete_item(item_id: UUID, user: Caller, session: SessionDep) -> Response:
    """Delete one of your items."""
    await service.delete(session, user.id, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
