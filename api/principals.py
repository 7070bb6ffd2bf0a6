"""Who is calling, without a database round trip (or a signature check) on
every request.

Resource routes (items, jobs) only need the caller's id and the fact that
their auth session is live and the account active. After one lookup, each
process keeps that answer for AUTH_CACHE_SECONDS: a revocation (logout, a
password change, a deactivation) made by another process is honoured here
within that time; the process that made it forgets the entries at once.
Routes that show or change the user (``/users/me``) always check afresh.
AUTH_CACHE_SECONDS=0 turns the cache off.

A token's signature is checked once per process: :class:`TokenCache` keeps the
claims of tokens already verified, and a cached token is still refused from
the second it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from api.cache import ExpiringLRU
from core.security import TokenClaims


@dataclass(frozen=True, slots=True)
class Principal:
    """An active user in a live auth session, as far as authorization needs
    to know."""

    id: UUID
    is_superuser: bool
    session_id: UUID


class PrincipalCache:
    """Principals by auth session id, each kept for ``ttl`` seconds; at most
    ``max_entries`` (the least recently used go first)."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._entries: ExpiringLRU[UUID, Principal] = ExpiringLRU(
            max_entries=max_entries, clock=clock
        )
        # Counts revocations this process made (see put).
        self.generation = 0

    def get(self, session_id: UUID) -> Principal | None:
        """The principal of a session while it is fresh, else None."""
        return self._entries.get(session_id)

    def put(self, principal: Principal, *, seen: int | None = None) -> None:
        """Remember an active user's principal (a no-op when the TTL is 0).
        ``seen``: the :attr:`generation` read before the database lookup; if
        a session was forgotten since, the lookup may predate that revocation
        and is not kept."""
        if self.ttl <= 0 or (seen is not None and seen != self.generation):
            return
        expires = self._entries.clock() + self.ttl
        self._entries.put(principal.session_id, principal, expires=expires)

    def forget(self, *, session_ids: Sequence[UUID] = (), user_id: UUID | None = None) -> None:
        """Drop sessions, or every session of a user (after this process
        revoked them), so that this process refuses their tokens at once."""
        self.generation += 1
        for session_id in session_ids:
            self._entries.pop(session_id)
        if user_id is not None:
            self._entries.drop_where(lambda principal: principal.id == user_id)


class TokenCache:
    """Verified tokens: their claims by token, at most ``max_entries``
    (the least recently used go first). Only valid tokens get in."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._entries: ExpiringLRU[str, TokenClaims] = ExpiringLRU(
            max_entries=max_entries, clock=clock
        )

    def claims(self, token: str, verify: Callable[[str], TokenClaims | None]) -> TokenClaims | None:
        """The token's claims while it is unexpired; ``verify`` checks a token
        not seen before (or seen expired)."""
        if token in self._entries:
            # Refused from its expiry on (and dropped: next time it is verified).
            return self._entries.get(token)
        claims = verify(token)
        if claims is None or self._entries.clock() >= claims.expires:
            return None
        self._entries.put(token, claims, expires=claims.expires)
        return claims
