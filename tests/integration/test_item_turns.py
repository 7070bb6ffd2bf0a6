"""An owner's item creations take turns on a transaction-level lock
(core.items.repository): a busy turn is waited for in the server's lock
queue, bounded by a lock_timeout that does not outlive the wait."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_sessionmaker, transaction
from core.items import repository


async def test_a_busy_turn_is_granted_when_released_and_bounds_nothing_after(
    engine: AsyncEngine,
) -> None:
    owner = uuid.uuid4()
    sessions = create_sessionmaker(engine)
    async with sessions() as holding, transaction(holding):
        await repository.lock_owner(holding, owner)
        async with sessions() as waiting, transaction(waiting):
            assert not await repository.try_lock_owner(waiting, owner)

            async def release_soon() -> None:
                await asyncio.sleep(0.2)
                await holding.commit()

            release = asyncio.create_task(release_soon())
            started = time.monotonic()
            assert await repository.wait_lock_owner(waiting, owner, seconds=5)
            assert 0.15 <= time.monotonic() - started < 5
            await release
            # The wait's lock_timeout is not left on the statements after it.
            assert await waiting.scalar(text("SHOW lock_timeout")) == "0"


async def test_a_turn_still_busy_after_the_bound_is_refused(engine: AsyncEngine) -> None:
    owner = uuid.uuid4()
    sessions = create_sessionmaker(engine)
    async with sessions() as holding, transaction(holding):
        await repository.lock_owner(holding, owner)
        async with sessions() as waiting:
            started = time.monotonic()
            assert not await repository.wait_lock_owner(waiting, owner, seconds=0.3)
            assert time.monotonic() - started >= 0.3
            await waiting.rollback()
    # Released with the holder's transaction: free again.
    async with sessions() as session, transaction(session):
        assert await repository.try_lock_owner(session, owner)
