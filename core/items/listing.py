"""The items list: a page of one owner's items, and how many match, counted
no further than a bound (a page of a large set does not count it all)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from sqlalchemy import Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.items.repository import matching
from core.models import Item

SortKey = Literal["created_at", "-created_at", "name", "-name", "price", "-price"]

_COLUMNS = {"created_at": Item.created_at, "name": Item.name, "price": Item.price}


@dataclass(frozen=True)
class ItemsPage:
    """A page of items; ``total`` is how many match, exact unless
    ``total_capped``, in which case more than ``total`` match."""

    rows: Sequence[Item]
    total: int
    total_capped: bool


def page_query(
    owner_id: UUID, *, q: str | None, sort: SortKey, limit: int, offset: int
) -> Select[Item]:
    """The page's rows: each sort has an index on (owner_id, column, id) that
    yields this order, so the scan stops at the LIMIT; the id breaks ties,
    so that pages never overlap or skip rows."""
    column = _COLUMNS[sort.lstrip("-")]
    order = (column.desc(), Item.id.desc()) if sort.startswith("-") else (column, Item.id)
    where = matching(owner_id, q)
    return select(Item).where(*where).order_by(*order).limit(limit).offset(offset)


def count_query(owner_id: UUID, *, q: str | None, up_to: int) -> Select[int]:
    """How many items match, counting no further than ``up_to``: the scan
    stops there."""
    matches = select(literal(1)).select_from(Item).where(*matching(owner_id, q))
    return select(func.count()).select_from(matches.limit(up_to).subquery())


async def page(
    session: AsyncSession,
    owner_id: UUID,
    *,
    limit: int,
    offset: int,
    q: str | None,
    sort: SortKey,
    total_cap: int,
) -> ItemsPage:
    """Rows ``offset`` to ``offset + limit`` of the owner's items matching
    ``q`` in the order ``sort``, and how many match, counted up to
    ``total_cap`` or to the end of this page, whichever is further (so
    ``total`` is never less than what the pages up to this one showed)."""
    query = page_query(owner_id, q=q, sort=sort, limit=limit, offset=offset)
    rows = (await session.scalars(query)).all()
    if len(rows) < limit and (rows or offset == 0):
        # The last page: it says how many there are, no count needed.
        return ItemsPage(rows, offset + len(rows), total_capped=False)
    bound = max(total_cap, offset + limit)
    counted = await session.scalar(count_query(owner_id, q=q, up_to=bound + 1)) or 0
    return ItemsPage(rows, min(counted, bound), total_capped=counted > bound)
