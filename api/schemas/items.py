"""Bodies and query types of the items routes. The field rules come from
:mod:`core.items.fields`, which the CSV import validates its rows with too."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, ConfigDict, model_validator

from api.schemas.common import Page
from core.items import service
from core.items.fields import Description, Name, Price, Quantity, Sku
from core.text import StorableStr

# The orders the list offers (``-``: descending), as the items service
# defines them.
ItemSort = service.SortKey
# Case-insensitive, within the name: the list's filter and the export's.
SearchText = Annotated[StorableStr | None, Query(min_length=1, max_length=200)]


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
    """A page of items and how many match in all: ``total`` is exact up to
    ITEMS_TOTAL_CAP matches (or the end of the page asked for, if further);
    past it, ``total`` is that bound and ``total_capped`` is true."""

    total_capped: bool

    @classmethod
    def of_listing(cls, listed: service.ItemsPage, *, limit: int, offset: int) -> ItemPage:
        """The page the items service listed."""
        return cls.model_validate(
            {
                "items": list(listed.rows),
                "total": listed.total,
                "total_capped": listed.total_capped,
                "limit": limit,
                "offset": offset,
            },
            from_attributes=True,
        )
