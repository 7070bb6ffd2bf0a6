"""The api as gunicorn loads it, core.lean_imports first (tests/unit/
test_lean_imports.py checks the imports alone): requests that use Redis and
Postgres answer as usual, and leave redis-py's cluster and sentinel clients
and uvicorn's command line unloaded. (Click itself is not looked for here:
httpx, the test's client, imports it for a command line of its own.)"""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import python_output

SERVED = """
import asyncio, json, sys
import core.lean_imports
from api.serving import Worker  # the worker class, as gunicorn's configuration loads it
import httpx
from api.main import create_app

async def main():
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/health/ready")
            form = {"username": "nobody-lean@example.com", "password": "not the password"}
            login = await client.post("/api/v1/auth/login", data=form)
            items = await client.get("/api/v1/items")
    names = ("redis.cluster", "redis.sentinel", "redis.asyncio.cluster", "uvicorn.main")
    loaded = {name: name in sys.modules for name in names}
    print(json.dumps([ready.status_code, login.status_code, items.status_code, loaded]))

asyncio.run(main())
"""


async def test_the_lean_api_answers_without_the_modules_it_leaves_out(engine: AsyncEngine) -> None:
    # ``engine``: the test database exists and is migrated (readiness checks it).
    # LOG_LEVEL: no access line after the figures (python_output reads the last line).
    output = await python_output(SERVED, LOG_LEVEL="WARNING")
    ready, login, items, loaded = json.loads(output)
    assert (ready, login, items) == (200, 401, 401)
    assert loaded == dict.fromkeys(
        ("redis.cluster", "redis.sentinel", "redis.asyncio.cluster", "uvicorn.main"), False
    )
