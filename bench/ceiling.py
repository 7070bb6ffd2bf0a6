"""The practical ceiling for ``GET /api/v1/items/{id}`` and ``POST
/api/v1/items``: a raw ASGI app.

``make bench`` runs it next to the api, in the same image and under the same
gunicorn settings (``gunicorn -c api/gunicorn.conf.py bench.ceiling:app``, see
``bench/compose.ceiling.yml``), and loads ``GET /items/{id}?owner={owner_id}``
and ``POST /items?owner={owner_id}`` with the same wrk settings as our
endpoints. It does only what the endpoints cannot avoid, on a per-worker
asyncpg pool sized like the api's, and answers the same JSON body as
``ItemRead``:

- GET: the same indexed SELECT (the statement SQLAlchemy emits for
  ``core.items.lookup.owned_row``, by id and owner), in autocommit;
- POST: the statements ``core.items.service.create`` sends, in one
  transaction: the owner's turn (``pg_try_advisory_xact_lock``, else
  ``pg_advisory_xact_lock`` under a one-second lock_timeout), the quota's
  bounded count (MAX_ITEMS_PER_USER), the INSERT ... ON CONFLICT DO NOTHING
  RETURNING; 201, or 409 for a sku the owner has.

No framework, no authentication, no ORM or session, no body validation
beyond parsing, no middleware: our endpoint's requests/s divided by this
one's is how much the stack costs.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import asyncpg
from starlette.types import Receive, Scope, Send

from core.settings import DatabaseSettings
from core.urls import normalize_database_url

# Character for character what SQLAlchemy sends for get_owned (select(Item)
# where id and owner_id), so the server plans and runs exactly the same query.
QUERY = (
    "SELECT items.owner_id, items.sku, items.name, items.description, items.price,"
    " items.quantity, items.id, items.created_at, items.updated_at \n"
    "FROM items \n"
    "WHERE items.id = $1::UUID AND items.owner_id = $2::UUID"
)
# The same statements, in the same order, as core.items.service.create.
TRY_LOCK_OWNER = "SELECT pg_try_advisory_xact_lock($1, hashtext($2))"
OWNER_LOCK_NAMESPACE = 0x69746D  # core.items.repository._OWNER_LOCK_NAMESPACE
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', '1000ms', true)"
LOCK_OWNER = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
RESET_LOCK_TIMEOUT = "SET LOCAL lock_timeout TO DEFAULT"
COUNT_OWNED = "SELECT count(*) FROM (SELECT 1 FROM items WHERE owner_id = $1 LIMIT $2) AS owned"
INSERT = (
    "INSERT INTO items (owner_id, sku, name, description, price, quantity)"
    " VALUES ($1::UUID, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::NUMERIC(12, 2), $6::INTEGER)"
    " ON CONFLICT (owner_id, sku) DO NOTHING"
    " RETURNING items.owner_id, items.sku, items.name, items.description, items.price,"
    " items.quantity, items.id, items.created_at, items.updated_at"
)
MAX_ITEMS = int(os.environ.get("MAX_ITEMS_PER_USER", "100000"))
PREFIX = "/items/"
JSON_HEADERS = [(b"content-type", b"application/json")]


def _timestamp(value: datetime) -> str:
    # pydantic writes an aware UTC datetime with "Z"; asyncpg returns UTC.
    return value.isoformat().replace("+00:00", "Z")


def item_json(row: asyncpg.Record) -> bytes:
    """The body ``ItemRead`` produces: same fields, order and formats (UUID and
    Decimal as strings, ISO timestamps), compact UTF-8 JSON."""
    price: Decimal = row["price"]
    body = {
        "id": str(row["id"]),
        "sku": row["sku"],
        "name": row["name"],
        "description": row["description"],
        "price": str(price),
        "quantity": row["quantity"],
        "created_at": _timestamp(row["created_at"]),
        "updated_at": _timestamp(row["updated_at"]),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class Ceiling:
    """The ASGI app. The pool is created in the lifespan, that is in each
    gunicorn worker after the fork (a pool never crosses a fork)."""

    def __init__(self) -> None:
        self.pool: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["method"] == "POST":
                status, body = await self.create(scope, receive)
            else:
                status, body = await self.handle(scope)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Open the pool at startup (sized like the api's engine: DB_POOL_SIZE
        kept, up to DB_POOL_SIZE + DB_MAX_OVERFLOW), close it at shutdown."""
        await receive()  # lifespan.startup
        try:
            settings = DatabaseSettings()
            url = normalize_database_url(settings.database_url)
            connect_args = dict(url.connect_args)
            server_settings = dict(connect_args.pop("server_settings", {}))
            server_settings.setdefault("application_name", "ceiling")
            self.pool = await asyncpg.create_pool(
                url.url.replace("postgresql+asyncpg://", "postgresql://", 1),
                # Grows to the api's pool size under load; starts small, so
                # that an idle ceiling does not hold connections while the api
                # is measured (both together must stay under max_connections).
                min_size=1,
                max_size=settings.db_pool_size + settings.db_max_overflow,
                # ... and gives them back soon after its run.
                max_inactive_connection_lifetime=2.0,
                server_settings=server_settings,
                **connect_args,
            )
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.pool.close()
        await send({"type": "lifespan.shutdown.complete"})

    async def handle(self, scope: Scope) -> tuple[int, bytes]:
        """``GET /items/{id}?owner={owner_id}``, and ``GET /health`` for compose."""
        path: str = scope["path"]
        if scope["method"] != "GET":
            return 405, b'{"error":"method not allowed"}'
        if path == "/health":
            return 200, b'{"status":"ok"}'
        if not path.startswith(PREFIX):
            return 404, b'{"error":"not found"}'
        owners = parse_qs(scope["query_string"].decode()).get("owner", [])
        try:
            item_id = UUID(path[len(PREFIX) :])
            owner_id = UUID(owners[0])
        except (ValueError, IndexError):
            return 422, b'{"error":"expected /items/{uuid}?owner={uuid}"}'
        row = await self.pool.fetchrow(QUERY, item_id, owner_id)
        if row is None:
            return 404, b'{"error":"item not found"}'
        return 200, item_json(row)

    async def create(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """``POST /items?owner={owner_id}`` with ``ItemCreate``'s JSON body."""
        if scope["path"] != "/items":
            return 404, b'{"error":"not found"}'
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            owner_id = UUID(parse_qs(scope["query_string"].decode())["owner"][0])
            fields = json.loads(b"".join(chunks))
            values = (
                fields["sku"],
                fields["name"],
                fields.get("description"),
                Decimal(fields["price"]),
                int(fields["quantity"]),
            )
        except (ValueError, KeyError, ArithmeticError):
            return 422, b'{"error":"expected /items?owner={uuid} and an item"}'
        async with self.pool.acquire() as connection, connection.transaction():
            if not await self.take_turn(connection, str(owner_id)):
                return 429, b'{"error":"busy"}'
            if await connection.fetchval(COUNT_OWNED, owner_id, MAX_ITEMS) >= MAX_ITEMS:
                return 403, b'{"error":"quota exceeded"}'
            row = await connection.fetchrow(INSERT, owner_id, *values)
        if row is None:
            return 409, b'{"error":"sku taken"}'
        return 201, item_json(row)

    @staticmethod
    async def take_turn(connection: Any, owner: str) -> bool:
        """The owner's lock as ``core.items.service._take_turn`` takes it:
        tried, else waited for in the server for up to LOCK_WAIT_SECONDS."""
        if await connection.fetchval(TRY_LOCK_OWNER, OWNER_LOCK_NAMESPACE, owner):
            return True
        await connection.execute(SET_LOCK_TIMEOUT)
        try:
            await connection.execute(LOCK_OWNER, OWNER_LOCK_NAMESPACE, owner)
        except asyncpg.LockNotAvailableError:
            return False
        await connection.execute(RESET_LOCK_TIMEOUT)
        return True


app = Ceiling()
