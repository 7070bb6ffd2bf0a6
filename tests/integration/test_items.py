"""Items: CRUD, validation, ownership and listing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.integration.conftest import register, serve, token_headers

ITEM = {"sku": "SKU-1", "name": "Widget", "description": "A widget", "price": "9.99", "quantity": 3}


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/items", json={**ITEM, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_get_update_delete(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    item = await create(client, user_headers)
    assert item["price"] == "9.99"  # a string: exact
    assert item["quantity"] == 3
    assert {"id", "created_at", "updated_at"} <= item.keys()
    assert "owner_id" not in item

    url = f"/api/v1/items/{item['id']}"
    assert (await client.get(url, headers=user_headers)).json() == item

    patched = await client.patch(
        url, json={"price": 12.5, "description": None}, headers=user_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["price"] == "12.50"
    assert patched.json()["description"] is None
    assert patched.json()["name"] == "Widget"

    deleted = await client.delete(url, headers=user_headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(url, headers=user_headers)).status_code == 404


async def test_sku_unique_per_owner(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    from tests.integration.conftest import register, token_headers

    await create(client, user_headers)
    duplicate = await client.post("/api/v1/items", json=ITEM, headers=user_headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    other = await token_headers(client, (await register(client))["email"])
    await create(client, other)  # the same sku for another owner is fine


async def test_patch_to_an_existing_sku_is_409(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    await create(client, user_headers, sku="A")
    b = await create(client, user_headers, sku="B")
    url = f"/api/v1/items/{b['id']}"
    assert (await client.patch(url, json={"sku": "A"}, headers=user_headers)).status_code == 409
    # Setting an item's sku to its own value is not a clash.
    assert (await client.patch(url, json={"sku": "B"}, headers=user_headers)).status_code == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"sku": ""},
        {"sku": "x" * 65},
        {"sku": "has space"},
        {"sku": "semi;colon"},
        {"name": ""},
        {"name": "n" * 201},
        {"description": "d" * 10_001},
        {"price": "-0.01"},
        {"price": "1.234"},
        {"price": "NaN"},
        {"price": "Infinity"},
        {"price": "10000000000.00"},
        {"price": "abc"},
        {"quantity": -1},
        {"quantity": 1.5},
        {"quantity": 2**31},
        {"name": "nul\x00byte"},
        {"owner_id": "00000000-0000-0000-0000-000000000000"},
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"created_at": "2020-01-01T00:00:00Z"},
    ],
)
async def test_create_rejects_bad_fields(
    client: httpx.AsyncClient, user_headers: dict[str, str], fields: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/items", json={**ITEM, **fields}, headers=user_headers)
    assert response.status_code == 422, response.text


async def test_bounds_are_accepted(client: httpx.AsyncClient, user_headers: dict[str, str]) -> None:
    item = await create(
        client,
        user_headers,
        sku="a" * 64,
        name="n" * 200,
        description="d" * 10_000,
        price="9999999999.99",
        quantity=2**31 - 1,
    )
    assert item["price"] == "9999999999.99"
    zero = await create(client, user_headers, sku="zero", price=0, quantity=0)
    assert zero["price"] == "0.00"


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"owner_id": "00000000-0000-0000-0000-000000000000"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"updated_at": "2020-01-01T00:00:00Z"},
        {"colour": "red"},
        {"name": None},
        {"price": None},
        {"quantity": -5},
    ],
)
async def test_patch_rejects_unknown_and_null_fields(
    client: httpx.AsyncClient, user_headers: dict[str, str], changes: dict[str, Any]
) -> None:
    item = await create(client, user_headers)
    url = f"/api/v1/items/{item['id']}"
    assert (await client.patch(url, json=changes, headers=user_headers)).status_code == 422
    assert (await client.get(url, headers=user_headers)).json() == item  # nothing changed


async def test_list_paginates_filters_and_sorts(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    for n, (name, price) in enumerate(
        [("Red apple", "3.00"), ("green APPLE", "1.00"), ("Banana", "2.00"), ("100%_sale", "5.00")]
    ):
        await create(client, user_headers, sku=f"s{n}", name=name, price=price)

    async def page(**params: Any) -> dict[str, Any]:
        response = await client.get("/api/v1/items", params=params, headers=user_headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await page()
    assert everything["total"] == 4
    assert everything["limit"] == 50
    # Newest first; rows of one transaction share created_at, the id breaks ties.
    keys = [(i["created_at"], i["id"]) for i in everything["items"]]
    assert keys == sorted(keys, reverse=True)

    apples = await page(q="apple", sort="price")
    assert apples["total"] == 2
    assert [i["name"] for i in apples["items"]] == ["green APPLE", "Red apple"]
    # LIKE wildcards in q are matched literally.
    assert (await page(q="%"))["total"] == 1
    assert (await page(q="_"))["total"] == 1

    by_price_desc = await page(sort="-price")
    assert [i["price"] for i in by_price_desc["items"]] == ["5.00", "3.00", "2.00", "1.00"]
    by_name = await page(sort="name")
    assert [i["name"] for i in by_name["items"]] == [
        "100%_sale",
        "Banana",
        "green APPLE",
        "Red apple",
    ]

    first = await page(limit=3, sort="price")
    second = await page(limit=3, offset=3, sort="price")
    assert first["total"] == second["total"] == 4
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 4


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"offset": -1},
        {"sort": "owner_id"},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "nul\x00"},
    ],
)
async def test_list_rejects_bad_parameters(
    client: httpx.AsyncClient, user_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/items", params=params, headers=user_headers)
    assert response.status_code == 422


async def test_limit_bounds(client: httpx.AsyncClient, user_headers: dict[str, str]) -> None:
    for limit in (1, 100):
        response = await client.get("/api/v1/items", params={"limit": limit}, headers=user_headers)
        assert response.status_code == 200


@pytest.fixture
async def live_client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The app on its own engine: every request commits for real, so that
    another connection can race it."""
    async with serve(settings) as client:
        yield client


async def test_a_patch_racing_a_delete_is_a_404_not_a_500(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    client = live_client
    headers = await token_headers(client, (await register(client))["email"])
    created = await client.post(
        "/api/v1/items",
        json={"sku": "raced", "name": "Raced", "price": "1.00", "quantity": 1},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    async with engine.connect() as other:
        transaction = await other.begin()
        # Another transaction holds the row, then deletes it while the
        # PATCH waits for it.
        await other.execute(text("SELECT 1 FROM items WHERE id = :id FOR UPDATE"), {"id": item_id})
        patch = asyncio.create_task(
            client.patch(f"/api/v1/items/{item_id}", json={"name": "Late"}, headers=headers)
        )
        await asyncio.sleep(1)
        assert not patch.done(), "the PATCH should wait for the row"
        await other.execute(text("DELETE FROM items WHERE id = :id"), {"id": item_id})
        await transaction.commit()
    response = await patch
    assert response.status_code == 404, response.text


async def test_the_item_read_answers_what_the_create_answered(settings: Settings) -> None:
    """GET /items/{id} reads in Core on the app's own engine (not the test's
    connection) and serialises once: the same bytes and headers FastAPI
    wrote for the create; another user's item and an unknown one are the
    same 404."""
    fields = {**ITEM, "name": 'Tasse à café "☕" \\ ok', "description": None}
    async with serve(settings) as client:
        owner = await token_headers(client, (await register(client))["email"])
        other = await token_headers(client, (await register(client))["email"])
        created = await client.post("/api/v1/items", json=fields, headers=owner)
        assert created.status_code == 201, created.text
        url = f"/api/v1/items/{created.json()['id']}"
        read = await client.get(url, headers=owner)
        unknown = f"/api/v1/items/{uuid.uuid4()}"
        missing = [await client.get(url, headers=other), await client.get(unknown, headers=owner)]
    assert read.status_code == 200
    assert read.content == created.content
    for name in ("content-type", "content-length"):
        assert read.headers[name] == created.headers[name]
    for response in missing:
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "item not found"}}
