"""Password hashing (Argon2id via pwdlib) and access tokens (PyJWT, HS256)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import anyio
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the email is unknown, so that a miss costs as much as
# a wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-work")


# Each Argon2 computation takes 64 MiB (pwdlib's memory cost). One at a time
# per process bounds a burst of logins to 64 MiB a process (5 gunicorn workers:
# 320 MiB), well inside an api container's memory limit; more at once would
# not finish sooner on a few cores anyway.
_ONE_AT_A_TIME = threading.Lock()


def _hash(password: str) -> str:
    with _ONE_AT_A_TIME:
        return _hasher.hash(password)


def _verify(password: str, hashed: str) -> bool:
    with _ONE_AT_A_TIME:
        return _hasher.verify(password, hashed)


async def hash_password(password: str) -> str:
    """Argon2id hash, computed in a thread: hashing takes tens of milliseconds
    and would otherwise stall every other request on this event loop."""
    return await anyio.to_thread.run_sync(_hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    """True when ``password`` matches ``hashed``; ``None`` burns the same time."""
    target = hashed if hashed is not None else _DUMMY_HASH
    ok = await anyio.to_thread.run_sync(_verify, password, target)
    return ok and hashed is not None


def create_access_token(user_id: UUID, *, secret: str, expires_in: timedelta) -> str:
    """A signed token naming the user, with ``iat`` and ``exp``."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(token: str, *, secret: str) -> tuple[UUID, float] | None:
    """The user id and the expiry (a Unix time) of a valid token, else None
    (bad signature, expired, another algorithm, ``alg: none``, missing claims,
    malformed)."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]}
        )
        return UUID(claims["sub"]), float(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
