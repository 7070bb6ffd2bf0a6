"""Login throttling in Redis: failures counted per email and per client IP in
a fixed window. Failures on one account never lock out another."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from core.errors import TooManyRequests
from core.settings import AuthSettings


def _keys(email: str, ip: str) -> tuple[str, str]:
    # Hashed so that emails do not sit in Redis in clear text.
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return f"login:fail:email:{digest}", f"login:fail:ip:{ip}"


async def check(redis: Redis, settings: AuthSettings, *, email: str, ip: str) -> None:
    """Raise :class:`TooManyRequests` when either counter is at its limit."""
    email_key, ip_key = _keys(email, ip)
    async with redis.pipeline(transaction=False) as pipe:
        for key in (email_key, ip_key):
            pipe.get(key)
            pipe.ttl(key)
        email_count, email_ttl, ip_count, ip_ttl = await pipe.execute()
    for count, ttl, limit in (
        (email_count, email_ttl, settings.login_max_failures),
        (ip_count, ip_ttl, settings.login_max_failures_per_ip),
    ):
        if count is not None and int(count) >= limit:
            retry_after = ttl if ttl and ttl > 0 else settings.login_window_seconds
            raise TooManyRequests(
                "too many failed login attempts; try again later", retry_after=retry_after
            )


async def record_failure(redis: Redis, settings: AuthSettings, *, email: str, ip: str) -> None:
    """Count one failed attempt for the email and for the IP."""
    async with redis.pipeline(transaction=True) as pipe:
        for key in _keys(email, ip):
            pipe.incr(key)
            pipe.expire(key, settings.login_window_seconds, nx=True)
        await pipe.execute()


async def reset(redis: Redis, *, email: str, ip: str) -> None:
    """Forget the email's failures after a successful login."""
    email_key, _ = _keys(email, ip)
    await redis.delete(email_key)
