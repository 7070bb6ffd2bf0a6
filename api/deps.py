"""Dependencies, named as nouns in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import transaction


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit on success, roll back on error.

    Declared with ``scope="function"`` so the commit (and the broker messages
    sent after it) happen before the response leaves: a client that gets a 2xx
    can read what it wrote.
    """
    async with request.app.state.sessionmaker() as session, transaction(session):
        yield session


def get_producer(request: Request) -> Celery:
    """The Celery app the API sends messages with."""
    producer: Celery = request.app.state.producer
    return producer


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ProducerDep = Annotated[Celery, Depends(get_producer)]
