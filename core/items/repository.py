"""SQL for items. Every query is scoped to an owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Item

SortKey = Literal["created_at", "-created_at", "name", "-name", "price", "-price"]


async def get_owned(session: AsyncSession, owner_id: UUID, item_id: UUID) -> Item | None:
    """The item if it exists and belongs to ``owner_id``."""
    return await session.scalar(select(Item).where(Item.id == item_id, Item.owner_id == owner_id))


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
    where: list[ColumnElement[bool]] = [Item.owner_id == owner_id]
    if q:
        where.append(Item.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    column = {"created_at": Item.created_at, "name": Item.name, "price": Item.price}[
        sort.lstrip("-")
    ]
    order = column.desc() if sort.startswith("-") else column.asc()
    # The id breaks ties, so that pages never overlap or skip rows.
    tie = Item.id.desc() if sort.startswith("-") else Item.id.asc()
    total = await session.scalar(select(func.count()).select_from(Item).where(*where)) or 0
    rows = await session.scalars(
        select(Item).where(*where).order_by(order, tie).limit(limit).offset(offset)
    )
    return rows.all(), total
