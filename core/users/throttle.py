"""Throttles in Redis: password checks and registrations.

Password checks (login, and ``current_password`` on a password change) are
limited per client address and per (email, client address) pair. An attempt
is *reserved* before the password is checked, in one atomic script that
refuses it when either counter is at its limit: N simultaneous guesses never
check more passwords than the limit allows. A reservation is given back when
the password was right, kept (it was a failure) when it was wrong, and given
back uncounted when the check did not happen (a 503, a lost connection).

Failures for one email from every address together never refuse anything,
so no one can lock a victim out of their account; beyond LOGIN_MAX_FAILURES
they slow that email's checks down, doubling from 0.1 s up to
LOGIN_MAX_DELAY_SECONDS.

IPv6 clients are counted per /64: one machine commonly holds a whole /64.
Any Redis failure refuses the attempt with a 503 (fail closed): a password is
never checked unthrottled.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import InvalidCredentials, ServiceUnavailable, TooManyRequests
from core.security import busy, hashing_saturated
from core.settings import AuthSettings

log = logging.getLogger(__name__)

# KEYS: address counter, pair counter, email counter.
# ARGV: address limit, pair limit, window seconds.
# Returns {1, email failures} when reserved, {0, seconds to wait} when refused.
_RESERVE = """
local window = tonumber(ARGV[3])
for i, limit in ipairs({tonumber(ARGV[1]), tonumber(ARGV[2])}) do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= limit then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = window end
    return {0, ttl}
  end
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], window) end
end
return {1, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""

# KEYS: address counter, pair counter, email counter. Gives the address's
# reservation back and forgets the failures of the pair and the email.
_GIVE_BACK = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""

# KEYS: address counter, pair counter, email counter. Gives both reservations
# back, forgetting nothing (the check never happened).
_RELEASE = """
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
"""

# KEYS: one counter. ARGV: window seconds. Returns the count, with this one.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return count
"""


def address_key(ip: str) -> str:
    """The part of a client address that is counted: IPv4 as is, IPv6 by /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((address, 64), strict=False).with_prefixlen
    return address.compressed


@dataclass(frozen=True, slots=True)
class _Keys:
    address: str
    pair: str
    email: str

    @classmethod
    def of(cls, email: str, ip: str) -> _Keys:
        # Hashed so that emails do not sit in Redis in clear text.
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        address = address_key(ip)
        return cls(
            f"pw:fail:ip:{address}", f"pw:fail:pair:{digest}:{address}", f"pw:fail:email:{digest}"
        )


def slowdown(email_failures: int, settings: AuthSettings) -> float:
    """Seconds to wait before checking a password for an email that failed
    ``email_failures`` times in the window (from any address)."""
    excess = email_failures - settings.login_max_failures
    if excess <= 0:
        return 0.0
    return min(settings.login_max_delay_seconds, 0.1 * float(2 ** min(excess - 1, 16)))


def _unavailable(exc: RedisError) -> ServiceUnavailable:
    log.warning("throttle unavailable, refusing the attempt: %s", exc)
    return ServiceUnavailable("the attempt could not be counted; retry shortly")


@asynccontextmanager
async def password_check(
    redis: Redis, settings: AuthSettings, *, email: str, ip: str
) -> AsyncIterator[None]:
    """Guard one password check for ``email`` from ``ip``: reserve the attempt
    (:class:`TooManyRequests` when a limit is reached), wait out the email's
    slowdown, run the body; :class:`InvalidCredentials` from the body keeps the
    attempt as a failure, success gives it back."""
    if hashing_saturated():
        raise busy()
    keys = _Keys.of(email, ip)
    try:
        reserved, value = await redis.eval(
            _RESERVE,
            3,
            keys.address,
            keys.pair,
            keys.email,
            settings.login_max_failures_per_ip,
            settings.login_max_failures,
            settings.login_window_seconds,
        )
    except RedisError as exc:
        raise _unavailable(exc) from exc
    if not reserved:
        raise TooManyRequests(
            "too many failed password attempts; try again later", retry_after=int(value)
        )
    delay = slowdown(int(value), settings)
    try:
        if delay:
            await asyncio.sleep(delay)
        yield
    except InvalidCredentials:
        try:
            await redis.eval(_COUNT, 1, keys.email, settings.login_window_seconds)
        except RedisError as exc:
            # The reservation already counts this failure against the
            # address and the pair; only the email's slowdown misses it.
            log.warning("could not count a failure for the email's slowdown: %s", exc)
        raise
    except BaseException:
        # Not an answer about the password (a 503, a lost connection, a
        # cancelled request): the attempt is given back, uncounted.
        await _give_back(redis, _RELEASE, keys)
        raise
    await _give_back(redis, _GIVE_BACK, keys)


async def _give_back(redis: Redis, script: str, keys: _Keys) -> None:
    try:
        await redis.eval(script, 3, keys.address, keys.pair, keys.email)
    except RedisError as exc:
        # The reservation then expires with its window.
        log.warning("could not give a reserved attempt back: %s", exc)


async def count_registration(redis: Redis, settings: AuthSettings, *, ip: str) -> None:
    """Count a registration from ``ip``; :class:`TooManyRequests` past
    REGISTER_MAX_PER_IP in the window, 503 when Redis fails."""
    key = f"register:ip:{address_key(ip)}"
    try:
        count = await redis.eval(_COUNT, 1, key, settings.register_window_seconds)
        ttl = await redis.ttl(key) if count > settings.register_max_per_ip else 0
    except RedisError as exc:
        raise _unavailable(exc) from exc
    if count > settings.register_max_per_ip:
        raise TooManyRequests(
            "too many registrations from this address; try again later",
            retry_after=ttl if ttl > 0 else settings.register_window_seconds,
        )
