"""The items list at scale: the name search finds exactly what a scan of the
owner's rows finds, whichever index serves it; every sort reads its index up
to the page's LIMIT; ``total`` is exact up to ITEMS_TOTAL_CAP and capped,
with ``total_capped``, past it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, get_args

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, transaction
from core.items import listing
from core.items.repository import matching
from core.models import Item, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import register, serve, token_headers, user_id, with_jobs

CAP = 100  # the smallest ITEMS_TOTAL_CAP allowed
Headers = dict[str, str]

# Names the search must treat as text: LIKE's wildcards and escape
# character, non-ASCII letters in both cases, mixed case.
NAMES = [
    "100% cotton",
    "100 cotton",
    "snake_case",
    "snakeXcase",
    "back\\slash",
    "backslash",
    "Éclair",
    "éclair",
    "ÉCLAIR",
    "Straße",
    "STRASSE",
    "Ωmega",
    "ωmega",
    "MiXeD Case",
    "mixed case",
    "plain",
]
QUERIES = ["%", "_", "\\", "100%", "e_c", "k\\s", "éclair", "ÉCL", "ωME", "aße", "MIXED", "c", "ca"]

# Rows of one owner in one statement: the same created_at for all (as an
# import gives them), prices and names repeating, so that ties are broken.
_SEED = text(
    """
    INSERT INTO items (owner_id, sku, name, price, quantity)
    SELECT :owner_id, 'S-' || g, :prefix || (g % 37), (g % 13) + 0.5, 1
    FROM generate_series(1, :count) AS g
    """
)


async def seed(session: AsyncSession, owner_id: uuid.UUID, count: int, prefix: str) -> None:
    await session.execute(_SEED, {"owner_id": owner_id, "count": count, "prefix": prefix})


def with_cap(settings: Settings, cap: int = CAP) -> Settings:
    return with_jobs(settings, items_total_cap=cap)


@pytest.fixture
async def capped(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[httpx.AsyncClient, Headers, uuid.UUID]]:
    """A client of an app with ITEMS_TOTAL_CAP at its minimum, and a user."""
    async with serve(with_cap(settings), sessionmaker) as client:
        user = await register(client)
        headers = await token_headers(client, user["email"])
        yield client, headers, await user_id(client, headers)


async def listed(client: httpx.AsyncClient, headers: Headers, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/items", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def every_page(
    client: httpx.AsyncClient, headers: Headers, limit: int, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = await listed(client, headers, limit=limit, offset=len(items), **params)
        items += page["items"]
        assert page["total"] >= len(items)
        if len(page["items"]) < limit:
            return items


async def ids(session: AsyncSession, query: Select[Any]) -> set[str]:
    return {str(id_) for id_ in (await session.scalars(query)).all()}


async def explain(session: AsyncSession, query: Select[Any]) -> str:
    """The plan of ``query``, its values written in (as EXPLAIN needs)."""
    assert session.bind is not None
    compiled = query.compile(session.bind, compile_kwargs={"literal_binds": True})
    return "\n".join((await session.scalars(text(f"EXPLAIN {compiled}"))).all())


# The search.


async def test_the_search_finds_what_a_scan_finds(
    sessionmaker: async_sessionmaker[AsyncSession], capped: tuple[httpx.AsyncClient, Headers, Any]
) -> None:
    client, headers, owner_id = capped
    async with sessionmaker() as session, transaction(session):
        other = User(email=f"other-{uuid.uuid4().hex[:12]}@example.com", hashed_password="x")
        session.add(other)
        await session.flush()
        for n, name in enumerate(NAMES):
            session.add(Item(owner_id=owner_id, sku=f"n-{n}", name=name, price=1, quantity=1))
            session.add(Item(owner_id=other.id, sku=f"n-{n}", name=name, price=1, quantity=1))

    async with sessionmaker() as session:
        for q in QUERIES:
            found = {item["id"] for item in await every_page(client, headers, 3, q=q)}
            # The same condition, read row by row.
            await session.execute(text("SET LOCAL enable_indexscan = off"))
            await session.execute(text("SET LOCAL enable_bitmapscan = off"))
            scanned = await ids(session, select(Item.id).where(*matching(owner_id, q)))
            await session.execute(text("SET LOCAL enable_indexscan = on"))
            await session.execute(text("SET LOCAL enable_bitmapscan = on"))
            assert found == scanned, q

    by_q = {q: {i["name"] for i in await every_page(client, headers, 50, q=q)} for q in QUERIES}
    assert by_q["%"] == {"100% cotton"}
    assert by_q["_"] == {"snake_case"}
    assert by_q["\\"] == {"back\\slash"}
    assert by_q["k\\s"] == {"back\\slash"}
    assert by_q["e_c"] == {"snake_case"}
    assert by_q["éclair"] == by_q["ÉCL"] == {"Éclair", "éclair", "ÉCLAIR"}
    assert by_q["ωME"] == {"Ωmega", "ωmega"}
    assert by_q["MIXED"] == {"MiXeD Case", "mixed case"}


@pytest.fixture
async def at_scale(settings: Settings) -> AsyncIterator[uuid.UUID]:
    """An owner with 20,000 items among another's 20,000, committed and
    analyzed (by the owner role: the app role may not), so that the planner
    plans with the statistics it would have in production. Deleted after."""
    engine = create_engine(settings.db.as_owner(), application_name="tests", direct=True)
    owners = [uuid.uuid4(), uuid.uuid4()]
    try:
        async with engine.begin() as connection:
            for owner_id in owners:
                email = f"scale-{owner_id.hex[:12]}@example.com"
                await connection.execute(
                    text(
                        "INSERT INTO users (id, email, hashed_password) VALUES (:id, :email, 'x')"
                    ),
                    {"id": owner_id, "email": email},
                )
                await connection.execute(_SEED_UNIQUE, {"owner_id": owner_id, "count": 20_000})
                for n, name in enumerate(NAMES):
                    values = {"owner_id": owner_id, "sku": f"n-{n}", "name": name}
                    await connection.execute(_NAMED, values)
        async with engine.begin() as connection:
            # What autovacuum does after a bulk insert: the rows GIN keeps
            # in its pending list (fastupdate) move into the index proper.
            await connection.execute(text("SELECT gin_clean_pending_list('ix_items_name_trgm')"))
            await connection.execute(text("ANALYZE items"))
        yield owners[0]
    finally:
        async with engine.begin() as connection:
            await connection.execute(delete(User).where(User.id.in_(owners)))
        await engine.dispose()


_NAMED = text(
    "INSERT INTO items (owner_id, sku, name, price, quantity) VALUES (:owner_id, :sku, :name, 1, 1)"
)


# A name of its own for each item (so that a long q is rare), the same
# created_at for all.
_SEED_UNIQUE = text(
    """
    INSERT INTO items (owner_id, sku, name, price, quantity)
    SELECT :owner_id, 'S-' || g, 'Oak desk ' || g, (g % 13) + 0.5, 1
    FROM generate_series(1, :count) AS g
    """
)


async def test_every_sort_reads_its_index_up_to_the_limit(
    session: AsyncSession, at_scale: uuid.UUID
) -> None:
    for sort in get_args(listing.SortKey):
        query = listing.page_query(at_scale, q=None, sort=sort, limit=50, offset=0)
        plan = await explain(session, query)
        scan = "Index Scan Backward" if sort.startswith("-") else "Index Scan"
        assert f"{scan} using ix_items_owner_id_{sort.lstrip('-')}_id" in plan, plan
        assert "Sort" not in plan, plan


async def test_the_trigram_index_serves_the_search(
    session: AsyncSession, at_scale: uuid.UUID
) -> None:
    # Not needed with these statistics; it keeps the test about whether the
    # index can serve the search, not about the planner's costs.
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    for query in (
        listing.count_query(at_scale, q="desk 12345", up_to=CAP + 1),
        listing.page_query(at_scale, q="DESK 12345", sort="-created_at", limit=50, offset=0),
    ):
        plan = await explain(session, query)
        assert "ix_items_name_trgm" in plan, plan
    assert await session.scalar(listing.count_query(at_scale, q="desk 12345", up_to=10)) == 1

    # Through the index, the search finds what a scan finds.
    for q in ["desk 1234", "éclair", "ÉCL", "ωME", "aße", "MIXED"]:
        search = select(Item.id).where(*matching(at_scale, q))
        assert "ix_items_name_trgm" in await explain(session, search), q
        indexed = await ids(session, search)
        await session.execute(text("SET LOCAL enable_seqscan = on"))
        await session.execute(text("SET LOCAL enable_indexscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        assert indexed == await ids(session, search), q
        await session.execute(text("SET LOCAL enable_indexscan = on"))
        await session.execute(text("SET LOCAL enable_bitmapscan = on"))
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    # Shorter than three characters, q gives the index no trigram to look
    # up: it is answered all the same (the search test above has such
    # queries), by reading the owner's rows in the page's order.


async def test_the_count_stops_at_its_bound(session: AsyncSession, owner: User) -> None:
    await seed(session, owner.id, 3 * CAP, "Red mug ")
    count = listing.count_query(owner.id, q=None, up_to=CAP + 1)
    assert await session.scalar(count) == CAP + 1
    assert "Limit" in await explain(session, count)
    everything = select(func.count()).select_from(Item).where(Item.owner_id == owner.id)
    assert await session.scalar(everything) == 3 * CAP


# The total.


async def test_the_total_is_exact_up_to_the_cap(
    sessionmaker: async_sessionmaker[AsyncSession], capped: tuple[httpx.AsyncClient, Headers, Any]
) -> None:
    client, headers, owner_id = capped
    assert await listed(client, headers) == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "total_capped": False,
    }
    async with sessionmaker() as session, transaction(session):
        await seed(session, owner_id, CAP, "Blue bowl ")
    page = await listed(client, headers, limit=10)
    assert (len(page["items"]), page["total"], page["total_capped"]) == (10, CAP, False)


async def test_past_the_cap_the_total_is_capped_and_says_so(
    sessionmaker: async_sessionmaker[AsyncSession], capped: tuple[httpx.AsyncClient, Headers, Any]
) -> None:
    client, headers, owner_id = capped
    async with sessionmaker() as session, transaction(session):
        await seed(session, owner_id, 3 * CAP, "Blue bowl ")

    first = await listed(client, headers, limit=10)
    assert (first["total"], first["total_capped"]) == (CAP, True)
    # Further than the cap: counted to the end of the page asked for.
    deep = await listed(client, headers, limit=100, offset=150)
    assert (len(deep["items"]), deep["total"], deep["total_capped"]) == (100, 250, True)
    # The last page, and past the end: exact again.
    last = await listed(client, headers, limit=100, offset=250)
    assert (len(last["items"]), last["total"], last["total_capped"]) == (50, 3 * CAP, False)
    beyond = await listed(client, headers, limit=10, offset=10_000)
    assert (beyond["items"], beyond["total"], beyond["total_capped"]) == ([], 3 * CAP, False)
    # The search's total is bounded the same way.
    assert (await listed(client, headers, q="bowl 1"))["total_capped"] is False
    searched = await listed(client, headers, q="blue", limit=1)
    assert (searched["total"], searched["total_capped"]) == (CAP, True)


@pytest.mark.parametrize("sort", get_args(listing.SortKey))
async def test_pages_neither_overlap_nor_skip(
    sessionmaker: async_sessionmaker[AsyncSession],
    capped: tuple[httpx.AsyncClient, Headers, Any],
    sort: str,
) -> None:
    client, headers, owner_id = capped
    async with sessionmaker() as session, transaction(session):
        await seed(session, owner_id, CAP + 23, "Tie ")
    items = await every_page(client, headers, 7, sort=sort)
    assert len({item["id"] for item in items}) == len(items) == CAP + 23
    column = sort.lstrip("-")

    def key(item: dict[str, Any]) -> tuple[Any, str]:
        value = float(item["price"]) if column == "price" else item[column]
        return value, item["id"]

    assert items == sorted(items, key=key, reverse=sort.startswith("-"))


# The setting.


@pytest.mark.parametrize("cap", [CAP, 1_000_000])
def test_the_cap_accepts_its_bounds(cap: int) -> None:
    assert JobSettings(items_total_cap=cap).items_total_cap == cap


@pytest.mark.parametrize("cap", [CAP - 1, 1_000_001])
def test_the_cap_refuses_values_past_its_bounds(cap: int) -> None:
    with pytest.raises(ValidationError, match="items_total_cap"):
        JobSettings(items_total_cap=cap)


def test_the_cap_defaults_to_a_thousand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITEMS_TOTAL_CAP", raising=False)
    assert JobSettings().items_total_cap == 1_000
