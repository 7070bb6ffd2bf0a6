"""SQL for items. Every query is scoped to an owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import ColumnElement, bindparam, exists, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import sqlstate
from core.items.rows import Record
from core.models import Item

# Built once: the hottest query, and building the expression costs more than
# running it from SQLAlchemy's compiled cache.
# For a change: the row stays locked until the transaction ends, so a
# concurrent delete either waits or has already removed it (404, not a 500).
# (The read-only GET takes core.items.lookup's Core statement instead.)
_GET_OWNED_FOR_UPDATE = (
    select(Item)
    .where(Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id"))
    .with_for_update()
)


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


async def get_owned_for_update(session: AsyncSession, owner_id: UUID, item_id: UUID) -> Item | None:
    """The item if it exists and belongs to ``owner_id``, its row locked for
    the rest of the transaction."""
    params = {"item_id": item_id, "owner_id": owner_id}
    return await session.scalar(_GET_OWNED_FOR_UPDATE, params)


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


def matching(owner_id: UUID, q: str | None) -> list[ColumnElement[bool]]:
    """The owner's items, and those whose name contains ``q`` (any case).
    The name's trigram index serves a ``q`` of three characters or more; a
    shorter one is checked row by row among the owner's items."""
    where: list[ColumnElement[bool]] = [Item.owner_id == owner_id]
    if q:
        where.append(Item.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    return where


async def count_matching(session: AsyncSession, owner_id: UUID, *, q: str | None) -> int:
    """How many of the owner's items match ``q``."""
    query = select(func.count()).select_from(Item).where(*matching(owner_id, q))
    return await session.scalar(query) or 0


async def stream_for_export(
    session: AsyncSession, owner_id: UUID, *, q: str | None, chunk_size: int = 1000
) -> AsyncIterator[Sequence[Record]]:
    """The matching items' CSV columns, sorted by sku, in chunks read through
    a server-side cursor (the whole table is never held as ORM objects).
    1,000 rows: at most about 10 MB even when every description is at its
    10,000-character limit."""
    query = (
        select(Item.sku, Item.name, Item.description, Item.price, Item.quantity)
        .where(*matching(owner_id, q))
        .order_by(Item.sku)
        .execution_options(yield_per=chunk_size)
    )
    result = await session.stream(query)
    async for chunk in result.partitions(chunk_size):
        yield [tuple(row) for row in chunk]  # type: ignore[misc]


# The items quota. An owner's item creations (the API's, and an import's
# for its whole transaction) hold this lock: each counts what the others
# committed. First key of the two-int form: the jobs' locks use another.
_OWNER_LOCK_NAMESPACE = 0x69746D  # "itm"
_LOCK_OWNER = text("SELECT pg_advisory_xact_lock(:ns, hashtext(:owner))")
_TRY_LOCK_OWNER = text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:owner))")
# A wait in the server's lock queue, bounded by a lock_timeout for this
# transaction only, put back to the default once the lock is held: the
# statements after it are not bounded by it.
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")
_RESET_LOCK_TIMEOUT = text("SET LOCAL lock_timeout TO DEFAULT")
# lock_not_available: the lock_timeout ran out.
_LOCK_NOT_AVAILABLE = "55P03"
_COUNT_OWNED = text(
    "SELECT count(*) FROM (SELECT 1 FROM items WHERE owner_id = :owner_id LIMIT :up_to) AS owned"
)


async def lock_owner(session: AsyncSession, owner_id: UUID) -> None:
    """Serialise the owner's item creations until the transaction ends. A
    transaction-level lock: safe behind PgBouncer's transaction mode."""
    await session.execute(_LOCK_OWNER, {"ns": _OWNER_LOCK_NAMESPACE, "owner": str(owner_id)})


async def try_lock_owner(session: AsyncSession, owner_id: UUID) -> bool:
    """:func:`lock_owner` without waiting: False when another transaction
    (an import of the owner's being written) holds it."""
    params = {"ns": _OWNER_LOCK_NAMESPACE, "owner": str(owner_id)}
    return bool(await session.scalar(_TRY_LOCK_OWNER, params))


async def wait_lock_owner(session: AsyncSession, owner_id: UUID, *, seconds: float) -> bool:
    """:func:`lock_owner`, waiting at most ``seconds``: False when it is still
    held then (the transaction is then aborted: the caller rolls it back).
    Queued in the server, it is granted the moment it is released, with no
    polling round trips between."""
    timeout = f"{max(1, round(seconds * 1000))}ms"
    await session.execute(_SET_LOCK_TIMEOUT, {"timeout": timeout})
    try:
        await lock_owner(session, owner_id)
    except DBAPIError as exc:
        if sqlstate(exc) == _LOCK_NOT_AVAILABLE:
            return False
        raise
    await session.execute(_RESET_LOCK_TIMEOUT)
    return True


async def count_owned(session: AsyncSession, owner_id: UUID, *, up_to: int) -> int:
    """How many items the owner has, counting no further than ``up_to``."""
    return await session.scalar(_COUNT_OWNED, {"owner_id": owner_id, "up_to": up_to}) or 0


async def upsert_within(
    session: AsyncSession, owner_id: UUID, records: list[Record], *, fresh: bool, room: int
) -> tuple[int, int, list[int]]:
    """:func:`upsert`, creating at most ``room`` items: the records of new
    skus past that many are not written (their indexes are returned, after
    created and updated). The caller holds :func:`lock_owner`."""
    if room >= len(records):
        return *await upsert(session, owner_id, records, fresh=fresh), []
    existing = await _existing(session, owner_id, records)
    new = [index for index, record in enumerate(records) if record[0] not in existing]
    over = new[max(room, 0) :]
    dropped = set(over)
    kept = [record for index, record in enumerate(records) if index not in dropped]
    return *await upsert(session, owner_id, kept, fresh=False), over


async def has_any(session: AsyncSession, owner_id: UUID) -> bool:
    """Whether the owner has any item at all."""
    return bool(await session.scalar(select(exists().where(Item.owner_id == owner_id))))


# Bulk writes of an import.

# Below this many rows one INSERT over arrays beats COPY, which costs extra
# round trips to set up.
COPY_MIN_ROWS = 500
# The columns COPY writes, a Record's fields after its owner.
COPY_COLUMNS = ("owner_id", "sku", "name", "description", "price", "quantity")

_EXISTING = text("SELECT sku FROM items WHERE owner_id = :owner_id AND sku = ANY(:skus)")

# Small batches: insert what is new in one statement; the skus it returns
# were created, the others exist and go to the update.
_INSERT_NEW = text(
    """
    INSERT INTO items (owner_id, sku, name, description, price, quantity)
    SELECT :owner_id, * FROM unnest(
        CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
        CAST(:prices AS numeric[]), CAST(:quantities AS integer[])
    )
    ON CONFLICT (owner_id, sku) DO NOTHING
    RETURNING sku
    """
)

# Rows whose values did not change are left alone (no write, no updated_at
# bump) and counted as unchanged. An empty description and no description are
# the same thing in a CSV cell.
_UPDATE = text(
    """
    WITH changed AS (
        UPDATE items
        SET name = r.name, description = r.description, price = r.price,
            quantity = r.quantity, updated_at = now()
        FROM unnest(
            CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
            CAST(:prices AS numeric[]), CAST(:quantities AS integer[])
        ) AS r(sku, name, description, price, quantity)
        WHERE items.owner_id = :owner_id AND items.sku = r.sku
          AND (items.name, coalesce(items.description, ''), items.price, items.quantity)
              IS DISTINCT FROM (r.name, coalesce(r.description, ''), r.price, r.quantity)
        RETURNING 1
    )
    SELECT count(*) FROM changed
    """
)


async def upsert(
    session: AsyncSession, owner_id: UUID, records: list[Record], *, fresh: bool
) -> tuple[int, int]:
    """Create the owner's items that are new and update the others; returns
    (created, updated), unchanged rows being neither. A large batch's new rows
    go in with COPY, the fastest path Postgres has, the existing ones are
    updated with one statement over arrays; for an owner who had no items
    (``fresh``) the batch is copied without looking first. The skus must be
    distinct."""
    if not records:
        return 0, 0
    # In sku order: two imports of one owner that share skus lock their rows
    # in the same order, so they wait for each other instead of deadlocking.
    records = sorted(records, key=itemgetter(0))
    if len(records) < COPY_MIN_ROWS:
        created = set((await session.scalars(_INSERT_NEW, _arrays(owner_id, records))).all())
        changes = [record for record in records if record[0] not in created]
        return len(created), await _update(session, owner_id, changes)
    if fresh and await _copy(session, owner_id, records):
        return len(records), 0
    while True:
        existing = await _existing(session, owner_id, records)
        new = [record for record in records if record[0] not in existing]
        # A failed copy means the owner created one of these skus (through
        # the API) since the check: look again.
        if not new or await _copy(session, owner_id, new):
            break
    changes = [record for record in records if record[0] in existing]
    return len(new), await _update(session, owner_id, changes)


def _arrays(owner_id: UUID, records: list[Record]) -> dict[str, Any]:
    skus, names, descriptions, prices, quantities = zip(*records, strict=True)
    return {
        "owner_id": owner_id,
        "skus": list(skus),
        "names": list(names),
        "descriptions": list(descriptions),
        "prices": list(prices),
        "quantities": list(quantities),
    }


async def _existing(session: AsyncSession, owner_id: UUID, records: list[Record]) -> set[str]:
    skus = [record[0] for record in records]
    rows = await session.scalars(_EXISTING, {"owner_id": owner_id, "skus": skus})
    return set(rows.all())


async def _copy(session: AsyncSession, owner_id: UUID, records: list[Record]) -> bool:
    """COPY new rows into items inside a savepoint. False, and nothing
    written, when one of the skus exists already."""
    try:
        async with session.begin_nested():
            connection = await (await session.connection()).get_raw_connection()
            driver = connection.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                "items",
                records=[(owner_id, *record) for record in records],
                columns=COPY_COLUMNS,
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _update(session: AsyncSession, owner_id: UUID, records: list[Record]) -> int:
    if not records:
        return 0
    return await session.scalar(_UPDATE, _arrays(owner_id, records)) or 0
