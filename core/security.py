"""Password hashing (Argon2id via pwdlib) and access tokens (PyJWT, HS256)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar
from uuid import UUID

import anyio
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from core.errors import ServiceUnavailable

ALGORITHM = "HS256"
T = TypeVar("T")

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the email is unknown, so that a miss costs as much as
# a wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-work")

# Each Argon2 computation takes 64 MiB (pwdlib's memory cost) and tens of
# milliseconds of a core. One at a time per process bounds a burst of logins
# or registrations to 64 MiB a process (5 gunicorn workers: 320 MiB); more at
# once would not finish sooner on a few cores anyway. Computations wait for
# their turn on this limiter without holding a thread, so a burst never
# starves the thread pool the rest of the API uses; with HASH_MAX_WAITING
# already waiting, a request is refused (503) instead of queueing for seconds.
HASH_CONCURRENCY = 1
HASH_MAX_WAITING = 64
_limiter = anyio.CapacityLimiter(HASH_CONCURRENCY)
# Computations admitted and not finished (running or waiting), counted before
# the first await so that a burst arriving at once is counted at once.
_admitted = 0


def busy() -> ServiceUnavailable:
    """The error of a process whose password checks are saturated."""
    return ServiceUnavailable("too many password checks at once; retry shortly", retry_after=1)


def hashing_saturated() -> bool:
    """Whether a password check now would be refused (503): callers that
    count attempts ask first, so that a refusal is never counted."""
    return _admitted >= HASH_CONCURRENCY + HASH_MAX_WAITING


async def _argon2(fn: Callable[..., T], *args: str) -> T:
    global _admitted
    if hashing_saturated():
        raise busy()
    _admitted += 1
    try:
        return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter)
    finally:
        _admitted -= 1


async def hash_password(password: str) -> str:
    """Argon2id hash, computed in a thread (tens of milliseconds that would
    otherwise stall every other request on this event loop)."""
    return await _argon2(_hasher.hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    """True when ``password`` matches ``hashed``; ``None`` burns the same time."""
    target = hashed if hashed is not None else _DUMMY_HASH
    ok = await _argon2(_hasher.verify, password, target)
    return ok and hashed is not None


class TokenClaims(NamedTuple):
    """What a valid access token says: who, from which auth session, until when."""

    user_id: UUID
    session_id: UUID
    expires: float  # Unix time


def create_access_token(
    user_id: UUID, session_id: UUID, *, secret: str, expires_in: timedelta
) -> str:
    """A signed token naming the user and the auth session it was issued
    from (``sid``), with ``iat`` and ``exp``."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "sid": str(session_id), "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(token: str, *, secret: str) -> TokenClaims | None:
    """The claims of a valid token, else None (bad signature, expired, another
    algorithm, ``alg: none``, missing claims (a token without ``sid`` could
    never be revoked), malformed)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "sid"]},
        )
        return TokenClaims(UUID(claims["sub"]), UUID(claims["sid"]), float(claims["exp"]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        return None
