"""SQL for users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page
from core.models import AuthSession, RefreshToken, User


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


async def active_session_user(
    session: AsyncSession, *, user_id: UUID, session_id: UUID
) -> User | None:
    """The user of a live (unrevoked) auth session, or None."""
    return await session.scalar(
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
        )
    )


async def refresh_token_for_update(
    session: AsyncSession, token_hash: bytes
) -> tuple[RefreshToken, AuthSession] | None:
    """A refresh token and its auth session, both locked until the end of the
    transaction (two exchanges of one token run one after the other)."""
    row = (
        await session.execute(
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update()
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def revoke_sessions(
    session: AsyncSession,
    *,
    reason: str,
    user_id: UUID | None = None,
    session_id: UUID | None = None,
) -> int:
    """Revoke the live auth sessions of a user, or one session; how many."""
    statement = update(AuthSession).where(AuthSession.revoked_at.is_(None))
    if user_id is not None:
        statement = statement.where(AuthSession.user_id == user_id)
    if session_id is not None:
        statement = statement.where(AuthSession.id == session_id)
    result = await session.execute(
        statement.values(revoked_at=func.now(), revoked_reason=reason),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_expired_sessions(session: AsyncSession, *, grace: timedelta) -> tuple[int, int]:
    """Delete auth sessions dead for longer than ``grace`` (their tokens go
    with them) and refresh tokens past their expiry; the two counts."""
    cutoff = func.now() - grace
    sessions = await session.execute(delete(AuthSession).where(AuthSession.expires_at < cutoff))
    tokens = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < cutoff))
    return int(sessions.rowcount), int(tokens.rowcount)  # type: ignore[attr-defined]
