"""Who is calling, without a database round trip (or a signature check) on
every request.

Resource routes (items, jobs) only need the caller's id and the fact that the
account is active. After one lookup, each process keeps that answer for
AUTH_CACHE_SECONDS: a deactivated account is refused by every process within
that time (its token stays valid until it expires anyway). Routes that show or
change the user (``/users/me``) always read it afresh. AUTH_CACHE_SECONDS=0
turns the cache off.

A token's signature is checked once per process: :class:`TokenCache` keeps the
subject and expiry of tokens already verified, and a cached token is still
refused from the second it expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Principal:
    """An active user, as far as authorization needs to know."""

    id: UUID
    is_superuser: bool


class PrincipalCache:
    """Principals by user id, each kept for ``ttl`` seconds; at most
    ``max_entries`` (the least recently used go first)."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[UUID, tuple[float, Principal]] = OrderedDict()

    def get(self, user_id: UUID) -> Principal | None:
        """The principal while it is fresh, else None."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, principal = entry
        if self.clock() >= expires:
            del self._entries[user_id]
            return None
        self._entries.move_to_end(user_id)
        return principal

    def put(self, principal: Principal) -> None:
        """Remember an active user's principal (a no-op when the TTL is 0)."""
        if self.ttl <= 0:
            return
        self._entries[principal.id] = (self.clock() + self.ttl, principal)
        self._entries.move_to_end(principal.id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, user_id: UUID) -> None:
        """Drop a user (after a change this process made to the account)."""
        self._entries.pop(user_id, None)


class TokenCache:
    """Verified tokens: subject and expiry by token, at most ``max_entries``
    (the least recently used go first). Only valid tokens get in."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[UUID, float]] = OrderedDict()

    def subject(
        self, token: str, verify: Callable[[str], tuple[UUID, float] | None]
    ) -> UUID | None:
        """The token's user id while it is unexpired; ``verify`` checks a token
        not seen before (or seen expired)."""
        entry = self._entries.get(token)
        if entry is None:
            entry = verify(token)
            if entry is None:
                return None
            self._entries[token] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        user_id, expires = entry
        if self.clock() >= expires:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return user_id
