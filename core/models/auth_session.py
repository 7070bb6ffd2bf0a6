"""Logins: one auth session per successful login, and the refresh tokens it
rotated through.

Every access token names its auth session (the ``sid`` claim); revoking the
session (logout, reuse of a refresh token, a password change, a deactivation)
refuses every access and refresh token issued from it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UUIDPrimaryKey


class AuthSession(UUIDPrimaryKey, Base):
    """A login, alive until revoked or until its last refresh token expires
    (the family of RFC 9700 §4.14)."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # The clock, not the transaction's start (now()): the oldest sessions are
    # the ones a login past MAX_SESSIONS_PER_USER ends.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False
    )
    # The expiry of its newest refresh token: after it the session is dead.
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), index=True, nullable=False
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # logout | refresh_reuse | password_change | deactivated
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """One refresh token, stored as the SHA-256 of the opaque value (the value
    has 256 random bits: a fast hash is enough, and a leaked table yields no
    usable token)."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), index=True, nullable=False
    )
    # Set when exchanged: presenting it again is a reuse.
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
