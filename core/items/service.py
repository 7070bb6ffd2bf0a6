"""Item logic: create, read, update, delete and list one owner's items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from core.items import repository
from core.items.repository import SortKey
from core.models import Item


def _duplicate(sku: str) -> Conflict:
    return Conflict(f"you already have an item with sku {sku!r}")


async def get(session: AsyncSession, owner_id: UUID, item_id: UUID) -> Item:
    """The owner's item. Another user's item is reported exactly like a missing one."""
    item = await repository.get_owned(session, owner_id, item_id)
    if item is None:
        raise NotFound("item not found")
    return item


async def _flush(session: AsyncSession, item: Item) -> Item:
    try:
        async with session.begin_nested():
            session.add(item)
    except IntegrityError:  # a concurrent request stored the same sku
        raise _duplicate(item.sku) from None
    await session.refresh(item)
    return item


async def create(session: AsyncSession, owner_id: UUID, fields: Mapping[str, Any]) -> Item:
    """A new item; :class:`Conflict` when the owner already uses the sku."""
    if await repository.sku_taken(session, owner_id, fields["sku"]):
        raise _duplicate(fields["sku"])
    return await _flush(session, Item(owner_id=owner_id, **fields))


async def update(
    session: AsyncSession, owner_id: UUID, item_id: UUID, changes: Mapping[str, Any]
) -> Item:
    """Apply a partial update to the owner's item."""
    item = await get(session, owner_id, item_id)
    sku = changes.get("sku")
    if sku is not None and await repository.sku_taken(session, owner_id, sku, except_id=item.id):
        raise _duplicate(sku)
    for name, value in changes.items():
        setattr(item, name, value)
    return await _flush(session, item)


async def delete(session: AsyncSession, owner_id: UUID, item_id: UUID) -> None:
    """Delete the owner's item."""
    await session.delete(await get(session, owner_id, item_id))
    await session.flush()


async def page(
    session: AsyncSession,
    owner_id: UUID,
    *,
    limit: int,
    offset: int,
    q: str | None,
    sort: SortKey,
) -> tuple[Sequence[Item], int]:
    """A page of the owner's items."""
    return await repository.page(session, owner_id, limit=limit, offset=offset, q=q, sort=sort)
