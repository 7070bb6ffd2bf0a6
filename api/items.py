"""Items owned by the current user."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import CurrentUser, SessionDep
from api.errors import AUTH_ERRORS, BODY_ERRORS, responses
from api.validation import Limit, Offset, Page, StorableStr
from core.items import service
from core.items.repository import SortKey

router = APIRouter(prefix="/api/v1/items", tags=["items"])

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Name = Annotated[StorableStr, Field(min_length=1, max_length=200)]
Description = Annotated[StorableStr, Field(max_length=10_000)]
# Numeric(12, 2) in the database; exact, and a string in JSON.
Price = Annotated[
    Decimal, Field(ge=0, le=Decimal("9999999999.99"), decimal_places=2, allow_inf_nan=False)
]
Quantity = Annotated[int, Field(ge=0, le=2_147_483_647)]


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


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 409),
)
async def create_item(body: ItemCreate, user: CurrentUser, session: SessionDep) -> ItemRead:
    """Create an item. Its sku must be new among your items."""
    item = await service.create(session, user.id, body.model_dump())
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage, responses=responses(*AUTH_ERRORS))
async def list_items(
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Annotated[StorableStr | None, Query(min_length=1, max_length=200)] = None,
    sort: SortKey = "-created_at",
) -> ItemPage:
    """Your items, filtered by ``q`` (case-insensitive, within the name) and sorted
    by ``created_at``, ``name`` or ``price`` (prefix ``-`` for descending)."""
    rows, total = await service.page(session, user.id, limit=limit, offset=offset, q=q, sort=sort)
    return ItemPage(
        items=[ItemRead.model_validate(i) for i in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{item_id}", response_model=ItemRead, responses=NOT_FOUND)
async def get_item(item_id: UUID, user: CurrentUser, session: SessionDep) -> ItemRead:
    """One of your items."""
    return ItemRead.model_validate(await service.get(session, user.id, item_id))


@router.patch(
    "/{item_id}", response_model=ItemRead, responses=responses(*AUTH_ERRORS, *BODY_ERRORS, 404, 409)
)
async def update_item(
    item_id: UUID, body: ItemUpdate, user: CurrentUser, session: SessionDep
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
async def delete_item(item_id: UUID, user: CurrentUser, session: SessionDep) -> Response:
    """Delete one of your items."""
    await service.delete(session, user.id, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
