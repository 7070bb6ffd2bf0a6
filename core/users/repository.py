"""SQL for users."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page
from core.models import User


async def get(session: AsyncSession, user_id: UUID) -> User | None:
    """The user, or None."""
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (already normalised) email, or None."""
    return await session.scalar(select(User).where(User.email == email))


async def page(session: AsyncSession, *, limit: int, offset: int) -> tuple[Sequence[User], int]:
    """A page of users, oldest first, and the total count."""
    return await fetch_page(
        session, User, order_by=(User.created_at, User.id), limit=limit, offset=offset
    )
