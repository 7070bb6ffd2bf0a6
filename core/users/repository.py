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


# FOR NO KEY UPDATE on the user row serialises what changes credentials
# (password change, deactivation) with the logins that are finishing, and
# logins of one user with each other; it never blocks the foreign-key checks
# of the user's other writes (items, jobs), which take KEY SHARE.


async def lock_for_update(session: AsyncSession, user_id: UUID) -> User | None:
    """The user, reloaded and locked until the end of the transaction."""
    return await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


async def lock_credentials(session: AsyncSession, user_id: UUID) -> tuple[str, bool] | None:
    """The stored password hash and active flag, locked until the end of the
    transaction: a concurrent password change waits for this login to commit
    (and then revokes its session), or this login sees the new hash."""
    row = (
        await session.execute(
            select(User.hashed_password, User.is_active)
            .where(User.id == user_id)
            .with_for_update(key_share=True)
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def delete_oldest_sessions(session: AsyncSession, user_id: UUID, *, keep: int) -> list[UUID]:
    """Delete a user's auth sessions but the ``keep`` newest (their tokens go
    with them); the ids deleted."""
    newest = (
        select(AuthSession.id)
        .where(AuthSession.user_id == user_id)
        .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
        .limit(keep)
    )
    result = await session.scalars(
        delete(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.id.not_in(newest))
        .returning(AuthSession.id)
    )
    return list(result.all())


async def delete_old_used_tokens(session: AsyncSession, session_id: UUID, *, keep: int) -> None:
    """Forget all but the ``keep`` most recently used refresh tokens of a
    session (the unused one always stays)."""
    recent = (
        select(RefreshToken.token_hash)
        .where(RefreshToken.session_id == session_id, RefreshToken.used_at.is_not(None))
        .order_by(RefreshToken.used_at.desc())
        .limit(keep)
    )
    await session.execute(
        delete(RefreshToken).where(
            RefreshToken.session_id == session_id,
            RefreshToken.used_at.is_not(None),
            RefreshToken.token_hash.not_in(recent),
        )
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
