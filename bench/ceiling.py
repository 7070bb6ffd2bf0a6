"""The practical ceiling for ``GET /api/v1/items/{id}``: a raw ASGI app.

``make bench`` runs it next to the api, in the same image and under the same
gunicorn settings (``gunicorn -c api/gunicorn.conf.py bench.ceiling:app``, see
``bench/compose.ceiling.yml``), and loads ``GET /items/{id}?owner={owner_id}``
with the same wrk settings as our endpoint. It does only what the endpoint
cannot avoid: the same indexed SELECT (the statement SQLAlchemy emits for
``core.items.repository.get_owned``, by id and owner) on a per-worker asyncpg
pool sized like the api's, and the same JSON body as ``ItemRead``. No
framework, no authentication, no session or transaction, no middleware: our
endpoint's requests/s divided by this one's is how much the stack costs.
"""

from __future__ import annotations

import json
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


app = Ceiling()
