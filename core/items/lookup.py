"""The owner's item by id, for the hottest route (``GET /api/v1/items/{id}``):
one SQLAlchemy Core statement on a bare connection, without a Session, an
identity map or an ORM object, none of which a read that only answers needs.
The same SQL as :func:`core.items.repository.get_owned_for_update`, without
the lock."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import first_row
from core.errors import NotFound
from core.models import Item

# Built once; compiled once, then taken from the engine's compiled cache.
_OWNED = select(*Item.__table__.c).where(
    Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id")
)


async def owned_row(bind: AsyncEngine | AsyncConnection, owner_id: UUID, item_id: UUID) -> Row[Any]:
    """The item's columns if it exists and belongs to ``owner_id``; another
    user's item is reported exactly like a missing one (404). ``bind``: an
    engine (a pooled connection is taken for the statement) or a connection
    already open."""
    params = {"item_id": item_id, "owner_id": owner_id}
    row = await first_row(bind, _OWNED, params)
    if row is None:
        raise NotFound("item not found")
    return row
