"""Logins as auth sessions: short access tokens, rotating refresh tokens,
revocation.

A login opens an auth session and returns an access token (a JWT naming the
session in ``sid``) and an opaque refresh token. Exchanging the refresh token
gives a new pair and marks the old one used; presenting a used one again
means it leaked (the client or the thief already moved on), so the whole
session is revoked (OAuth 2.0 Security BCP, RFC 9700 §4.14). Logout revokes
the session; a password change or a deactivation revokes all of the user's.
An access token is accepted only while its session is live.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InactiveUser, InvalidCredentials, NotAuthenticated
from core.models import AuthSession, RefreshToken, User
from core.security import TokenClaims, create_access_token
from core.settings import Settings
from core.users import repository

RevokeReason = Literal["logout", "refresh_reuse", "password_change", "deactivated"]
# Dead sessions and used tokens are kept this long past their expiry, so that
# a late reuse of a stolen refresh token is still recognised as one.
CLEANUP_GRACE = timedelta(days=1)
# Used refresh tokens remembered per session: presenting one of them revokes
# the session; an older one is merely unknown (401). Bounds the rows a client
# that refreshes in a loop can make.
USED_TOKENS_KEPT = 10


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds, of the access token
    refresh_expires_in: int  # seconds, of the refresh token


def _digest(refresh_token: str) -> bytes:
    return hashlib.sha256(refresh_token.encode("utf-8", "surrogatepass")).digest()


def _issue(
    session: AsyncSession, user_id: UUID, auth_session: AuthSession, settings: Settings
) -> TokenPair:
    access_ttl = timedelta(minutes=settings.auth.access_token_expire_minutes)
    refresh_ttl = timedelta(days=settings.auth.refresh_token_expire_days)
    refresh_token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + refresh_ttl
    auth_session.expires_at = expires_at
    session.add(
        RefreshToken(
            token_hash=_digest(refresh_token), session_id=auth_session.id, expires_at=expires_at
        )
    )
    access = create_access_token(
        user_id, auth_session.id, secret=settings.app.secret_key, expires_in=access_ttl
    )
    return TokenPair(
        access, refresh_token, int(access_ttl.total_seconds()), int(refresh_ttl.total_seconds())
    )


@dataclass(frozen=True, slots=True)
class Login:
    """A new auth session's tokens, and the user's oldest sessions it ended
    (past MAX_SESSIONS_PER_USER)."""

    tokens: TokenPair
    evicted: list[UUID]


async def start(session: AsyncSession, user: User, settings: Settings) -> Login:
    """Open an auth session for ``user``, who just proved their password.

    The password hash is read again, locked: a password change or
    deactivation that committed while the (slow) check ran refuses this login
    (:class:`InvalidCredentials`, :class:`InactiveUser`), and one that starts
    now waits for it and then revokes its session. Beyond
    MAX_SESSIONS_PER_USER, the user's oldest sessions are deleted."""
    current = await repository.lock_credentials(session, user.id)
    if current is None or current[0] != user.hashed_password:
        raise InvalidCredentials
    if not current[1]:
        raise InactiveUser
    evicted = await repository.delete_oldest_sessions(
        session, user.id, keep=settings.auth.max_sessions_per_user - 1
    )
    auth_session = AuthSession(id=uuid4(), user_id=user.id, expires_at=datetime.now(UTC))
    session.add(auth_session)
    pair = _issue(session, user.id, auth_session, settings)
    await session.flush()
    return Login(pair, evicted)


@dataclass(frozen=True, slots=True)
class Refused:
    """A refresh that gives nothing; ``revoked`` when it revoked a session
    (the caller must still commit that before answering)."""

    message: str
    revoked: UUID | None = None


async def refresh(
    session: AsyncSession, refresh_token: str, settings: Settings
) -> TokenPair | Refused:
    """Exchange a refresh token for a new pair. A used token revokes its
    session; an unknown, expired or revoked one is refused."""
    found = await repository.refresh_token_for_update(session, _digest(refresh_token))
    if found is None:
        return Refused("invalid refresh token")
    token, auth_session = found
    if auth_session.revoked_at is not None:
        return Refused("this login was revoked; log in again")
    now = datetime.now(UTC)
    if token.used_at is not None:
        await repository.revoke_sessions(
            session, reason="refresh_reuse", session_id=auth_session.id
        )
        return Refused(
            "refresh token already used: every token of this login is revoked; log in again",
            revoked=auth_session.id,
        )
    if token.expires_at <= now:
        return Refused("refresh token expired; log in again")
    user = await repository.get(session, auth_session.user_id)
    if user is None or not user.is_active:
        return Refused("this account can no longer log in")
    token.used_at = now
    pair = _issue(session, user.id, auth_session, settings)
    await session.flush()
    await repository.delete_old_used_tokens(session, auth_session.id, keep=USED_TOKENS_KEPT)
    return pair


async def revoke(session: AsyncSession, session_id: UUID, reason: RevokeReason) -> None:
    """Revoke one auth session (logout)."""
    await repository.revoke_sessions(session, reason=reason, session_id=session_id)


async def revoke_all(session: AsyncSession, user_id: UUID, reason: RevokeReason) -> int:
    """Revoke every live auth session of a user; how many there were."""
    return await repository.revoke_sessions(session, reason=reason, user_id=user_id)


async def authorize(session: AsyncSession, claims: TokenClaims) -> User:
    """The user of a valid access token whose session is still live:
    :class:`NotAuthenticated` when it was revoked (or the user deleted),
    :class:`InactiveUser` for a deactivated account."""
    user = await repository.active_session_user(
        session, user_id=claims.user_id, session_id=claims.session_id
    )
    if user is None:
        raise NotAuthenticated
    if not user.is_active:
        raise InactiveUser
    return user


async def cleanup(session: AsyncSession) -> tuple[int, int]:
    """Delete sessions and refresh tokens expired for over CLEANUP_GRACE."""
    return await repository.delete_expired_sessions(session, grace=CLEANUP_GRACE)
