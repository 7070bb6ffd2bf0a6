"""SQL for items. Every query is scoped to an owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page
from core.models import Item

SortKey = Literal["created_at", "-created_at", "name", "-name", "price", "-price"]


# Built once: the hottest query, and building the expression costs more than
# running it from SQLAlchemy's compiled cache.
_GET_OWNED = select(Item).where(
    Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id")
)
# For a change: the row stays locked until the transaction ends, so a
# concurrent delete either waits or has already removed it (404, not a 500).
_GET_OWNED_FOR_UPDATE = _GET_OWNED.with_for_update()


async def insert_new(
    session: AsyncSession, owner_id: UUID, fields: Mapping[str, Any]
) -> Item | None:
    """Insert the item and return it, or None when the owner already has its
    sku: one statement, whatever concurrent requests do."""
    statement = (
        insert(Item)
        .values(owner_id=owner_id, **fields)
        .on_conflict_do_nothing(index_elements=[Item.owner_id, Item.sku])
        .returning(Item)
    )
    return await session.scalar(statement)


async def get_owned(
    session: AsyncSession, owner_id: UUID, item_id: UUID, *, for_update: bool = False
) -> Item | None:
    """The item if it exists and belongs to ``owner_id``; ``for_update``
    locks its row for the rest of the transaction."""
    statement = _GET_OWNED_FOR_UPDATE if for_update else _GET_OWNED
    return await session.scalar(statement, {"item_id": item_id, "owner_id": owner_id})


async def sku_taken(
    session: AsyncSession, owner_id: UUID, sku: str, *, except_id: UUID | None = None
) -> bool:
    """Whether the owner already has an item with this sku."""
    query = select(Item.id).where(Item.owner_id == owner_id, Item.sku == sku)
    if except_id is not None:
        query = query.where(Item.id != except_id)
    return await session.scalar(query.limit(1)) is not None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matching(owner_id: UUID, q: str | None) -> list[ColumnElement[bool]]:
    """The owner's items, and those whose name contains ``q`` (any case)."""
    where: list[ColumnElement[bool]] = [Item.owner_id == owner_id]
    if q:
        where.append(Item.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    return where


async def count_matching(session: AsyncSession, owner_id: UUID, *, q: str | None) -> int:
    """How many of the owner's items match ``q``."""
    query = select(func.count()).select_from(Item).where(*_matching(owner_id, q))
    return await session.scalar(query) or 0


ExportRow = tuple[str, str, str | None, Decimal, int]


async def stream_for_export(
    session: AsyncSession, owner_id: UUID, *, q: str | None, chunk_size: int = 5000
) -> AsyncIterator[Sequence[ExportRow]]:
    """The matching items' CSV columns, sorted by sku, in chunks read through
    a server-side cursor (the whole table is never held as ORM objects)."""
    query = (
        select(Item.sku, Item.name, Item.description, Item.price, Item.quantity)
        .where(*_matching(owner_id, q))
        .order_by(Item.sku)
        .execution_options(yield_per=chunk_size)
    )
    result = await session.stream(query)
    async for chunk in result.partitions(chunk_size):
        yield [tuple(row) for row in chunk]  # type: ignore[misc]


async def page(
    session: AsyncSession,
    owner_id: UUID,
    *,
    limit: int,
    offset: int,
    q: str | None,
    sort: SortKey,
) -> tuple[Sequence[Item], int]:
    """A page of the owner's items and how many match in all."""
    column = {"created_at": Item.created_at, "name": Item.name, "price": Item.price}[
        sort.lstrip("-")
    ]
    order = column.desc() if sort.startswith("-") else column.asc()
    # The id breaks ties, so that pages never overlap or skip rows.
    tie = Item.id.desc() if sort.startswith("-") else Item.id.asc()
    return await fetch_page(
        session,
        Item,
        where=_matching(owner_id, q),
        order_by=(order, tie),
        limit=limit,
        offset=offset,
    )
