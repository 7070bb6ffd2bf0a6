"""Item logic: create, read, update, delete and list one owner's items."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import save_unique
from core.errors import Conflict, NotFound
from core.items import repository
from core.models import Item


def _duplicate(sku: str) -> Conflict:
    return Conflict(f"you already have an item with sku {sku!r}")


async def get(
    session: AsyncSession, owner_id: UUID, item_id: UUID, *, for_update: bool = False
) -> Item:
    """The owner's item. Another user's item is reported exactly like a missing one."""
    item = await repository.get_owned(session, owner_id, item_id, for_update=for_update)
    if item is None:
        raise NotFound("item not found")
    return item


async def create(session: AsyncSession, owner_id: UUID, fields: Mapping[str, Any]) -> Item:
    """A new item; :class:`Conflict` when the owner already uses the sku."""
    item = await repository.insert_new(session, owner_id, fields)
    if item is None:
        raise _duplicate(fields["sku"])
    return item


async def update(
    session: AsyncSession, owner_id: UUID, item_id: UUID, changes: Mapping[str, Any]
) -> Item:
    """Apply a partial update to the owner's item."""
    item = await get(session, owner_id, item_id, for_update=True)
    sku = changes.get("sku")
    if sku is not None and await repository.sku_taken(session, owner_id, sku, except_id=item.id):
        raise _duplicate(sku)
    for name, value in changes.items():
        setattr(item, name, value)
    await save_unique(session, item, _duplicate(item.sku))
    return item


async def delete(session: AsyncSession, owner_id: UUID, item_id: UUID) -> None:
    """Delete the owner's item."""
    await session.delete(await get(session, owner_id, item_id, for_update=True))
    await session.flush()


# A page of the owner's items.
page = repository.page
