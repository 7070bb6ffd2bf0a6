"""Request rate limits per user and per client address, counted in Redis.

Every request but ``/health/*`` and ``/metrics`` counts against its client
address (IPv6: its /64) and, with a valid bearer token (its subject, read
without a database query), against that user too. Invalid tokens count
against the address only, and the route answers its 401 as before.

Fixed windows, as the ``limits`` library's fixed-window strategy keeps them
(a counter that expires a window after its first request): O(1) per key
where a moving window keeps a timestamp per request; the price, up to twice
the quota across a window's edge, is fine against abuse. Its strategies take
two or three round trips per key to count and then read what remains, so
one Lua script (its incr_expire.lua for both keys, returning counts and
times left) takes one, the concurrent requests' scripts written together on
one connection (api/redis_pipeline.py). The rates are read in its notation
(core.settings_ratelimit).

Fail open: when Redis fails, requests go through (a warning, and
``appstack_rate_limit_unchecked_total``). The login throttle fails closed,
as a password must never be checked uncounted; this limit protects capacity,
and most routes need no Redis: its outage must not take them all down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.principals import TokenCache
from api.redis_pipeline import PipelinedScript
from api.scope_headers import bearer_token, has_body
from core.errors import TooManyRequests
from core.security import verify_access_token
from core.settings import Settings
from core.settings_ratelimit import Rate
from core.users.throttle import address_key

log = logging.getLogger(__name__)

# Seconds Redis is left alone after it failed (requests go through unchecked).
PAUSE_SECONDS = 5.0
# Past this a check gives up (the request goes on unchecked); as the API's
# other Redis timeouts, so that a loop lagging under a flood keeps the limit.
REDIS_TIMEOUT_SECONDS = 2.0
# Checks waiting for Redis at once, per process; the others wait their turn.
IN_FLIGHT = 32
EXEMPT_PREFIXES, EXEMPT_PATHS = ("/health/",), frozenset({"/metrics"})

REFUSED = Counter(
    "appstack_rate_limited", "Requests refused with 429, by the policy spent.", ["policy"]
)
UNCHECKED = Counter(
    "appstack_rate_limit_unchecked",
    "Requests let through without a rate-limit check because Redis failed.",
)

# KEYS: one counter per policy. ARGV: each policy's quota and window (ms).
# Counts the request on every counter only when none is spent, so that a
# refused request takes nothing from the others (a user past their limit
# does not eat their address's share). A new counter expires one window
# after its first request (limits' incr_expire.lua). Returns 1 (counted) or
# 0 (refused), then each counter's count and milliseconds left.
_SCRIPT = """
local allowed = 1
local counts = {}
for i = 1, #KEYS do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if counts[i] >= tonumber(ARGV[2 * i - 1]) then allowed = 0 end
end
local out = {allowed}
for i = 1, #KEYS do
  if allowed == 1 then counts[i] = redis.call('INCR', KEYS[i]) end
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    if counts[i] > 0 then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
    ttl = tonumber(ARGV[2 * i])
  end
  out[#out + 1] = counts[i]
  out[#out + 1] = ttl
end
return out
"""


@dataclass(frozen=True, slots=True)
class Policy:
    """One quota: its name in the headers, the rate (which names the keys),
    requests per window and the window in seconds."""

    name: str
    item: Rate
    quota: int
    window: int

    @classmethod
    def of(cls, name: str, item: Rate) -> Policy:
        """The policy ``name`` allowing ``item``'s rate."""
        return cls(name, item, item.amount, item.seconds)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request left of one policy."""

    policy: Policy
    count: int
    reset_ms: int

    @property
    def remaining(self) -> int:
        """Requests left in the window."""
        return max(0, self.policy.quota - self.count)

    @property
    def reset(self) -> int:
        """Whole seconds until the window ends, rounded up."""
        return max(1, -(-self.reset_ms // 1000))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request went through (else it took nothing), and its usages."""

    allowed: bool
    usages: list[Usage]


# The header syntax of draft-ietf-httpapi-ratelimit-headers-11 (May 2026;
# the same as -10): both fields are Structured Field Lists (RFC 9651) of
# String items with Integer parameters, e.g.
#   RateLimit-Policy: "user";q=600;w=60, "address";q=1200;w=60
#   RateLimit: "user";r=599;t=60, "address";r=1199;t=60
# q: quota (requests), w: window (s), r: remaining, t: seconds to reset.
def policy_header(policies: Sequence[Policy]) -> bytes:
    """The ``RateLimit-Policy`` value for these policies."""
    return ", ".join(f'"{p.name}";q={p.quota};w={p.window}' for p in policies).encode()


def limit_header(usages: Sequence[Usage]) -> bytes:
    """The ``RateLimit`` value after this request."""
    return ", ".join(f'"{u.policy.name}";r={u.remaining};t={u.reset}' for u in usages).encode()


# The same few addresses come back request after request (each an address
# the proxy module parsed, so short).
_address_key = functools.lru_cache(maxsize=4096)(address_key)


class RateLimiter:
    """The policies, and the one Redis round trip that counts a request."""

    def __init__(self, settings: Settings) -> None:
        limits = settings.ratelimit
        self.user = Policy.of("user", limits.user_rate)
        self.address = Policy.of("address", limits.address_rate)
        self.secret = settings.app.secret_key
        # Its own connection: short timeouts, no retry. At most IN_FLIGHT
        # checks at once, the others waiting their turn.
        self.slots = asyncio.Semaphore(IN_FLIGHT)
        self.script = PipelinedScript(
            settings.redis.redis_url, _SCRIPT, timeout=REDIS_TIMEOUT_SECONDS
        )
        self.paused_until = 0.0
        self.probing = False
        self.headers = {
            False: policy_header((self.address,)),
            True: policy_header((self.user, self.address)),
        }

    async def aclose(self) -> None:
        """Close the Redis connection."""
        await self.script.aclose()

    async def hit(self, user: str | None, address: str) -> Verdict | None:
        """Count one request of ``user`` (None: anonymous) from ``address``,
        unless a policy is spent; None when Redis failed."""
        policies = [self.address] if user is None else [self.user, self.address]
        keys = [self.address.item.key_for("address", _address_key(address))]
        if user is not None:
            keys.insert(0, self.user.item.key_for("user", user))
        args: list[int] = []
        for policy in policies:
            args += [policy.quota, policy.window * 1000]
        reply = await self._ask(keys, args)
        if reply is None:
            UNCHECKED.inc()
            return None
        usages = [
            Usage(policy, int(reply[1 + 2 * i]), int(reply[2 + 2 * i]))
            for i, policy in enumerate(policies)
        ]
        return Verdict(bool(reply[0]), usages)

    async def _ask(self, keys: list[str], args: list[int]) -> list[int] | None:
        # A circuit breaker: after a failure Redis is left alone for
        # PAUSE_SECONDS; then one check probes it while the others still go
        # through unchecked, so that a hung Redis delays one request, not all.
        if self.probing or time.monotonic() < self.paused_until:
            return None
        probe = self.paused_until > 0
        self.probing = probe
        try:
            # Queueing for a slot counts too: a slow Redis must not hold
            # requests for longer than one check may take.
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS), self.slots:
                if time.monotonic() < self.paused_until:  # failed meanwhile
                    return None
                reply = await self.script(keys, args)
        except (RedisError, TimeoutError) as exc:  # timed out: a slot or the reply
            if isinstance(exc, TimeoutError):
                self.script.abort()
            now = time.monotonic()
            if now >= self.paused_until:  # once, not for every check in flight
                reason = str(exc) or "timed out"
                log.warning(
                    "rate limits unchecked for %gs, Redis failed: %s", PAUSE_SECONDS, reason
                )
            self.paused_until = now + PAUSE_SECONDS
            return None
        finally:
            if probe:
                self.probing = False
        if probe:
            self.paused_until = 0.0
        return reply  # type: ignore[return-value]  # the script's list of integers


class RateLimit:
    """Pure ASGI middleware: a 429 in the one error shape once a policy is
    spent; the RateLimit headers on every limited response."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if not path or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        user = self._user(scope)
        client = scope.get("client")
        verdict = await self.limiter.hit(user, client[0] if client else "unknown")
        if verdict is None:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"ratelimit-policy", self.limiter.headers[user is not None]),
            (b"ratelimit", limit_header(verdict.usages)),
        ]
        if not verdict.allowed:
            spent = [u for u in verdict.usages if u.count >= u.policy.quota]
            if has_body(scope):
                # Refused before its body was read (an upload, say): close
                # the connection, so the server does not read the rest.
                headers.append((b"connection", b"close"))
            await refusal(spent, headers)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _user(self, scope: Scope) -> str | None:
        token = bearer_token(scope)
        if token is None:
            return None
        tokens: TokenCache = scope["app"].state.tokens
        secret = self.limiter.secret
        claims = tokens.claims(token, lambda t: verify_access_token(t, secret=secret))
        return str(claims.user_id) if claims is not None else None


def refusal(spent: list[Usage], headers: list[tuple[bytes, bytes]]) -> Response:
    """The 429 for a request refused by the ``spent`` policies."""
    retry_after = max(usage.reset for usage in spent)
    for usage in spent:
        REFUSED.labels(usage.policy.name).inc()
    names = " and ".join(f"this {usage.policy.name}" for usage in spent)
    error = TooManyRequests(
        f"too many requests from {names}; retry in {retry_after} seconds", retry_after=retry_after
    )
    response = error_response(error.status_code, error.code, error.message, error.headers)
    response.raw_headers.extend(headers)
    return response
