"""Settings of the request rate limits (a group of core.settings)."""

from __future__ import annotations

from limits import RateLimitItem, parse_many
from pydantic import field_validator

from core.settings_base import SettingsGroup

# Bounds of one rate: a counter per user or address lives for one window in
# Redis, so the window is at most a day; a quota past a million requests a
# window would not limit anything.
MAX_QUOTA = 1_000_000
MAX_WINDOW_SECONDS = 86_400


def parse_rate(value: str) -> RateLimitItem:
    """One rate in the notation of the ``limits`` library (``600/minute``,
    ``100 per 10 seconds``); ValueError naming the bounds otherwise."""
    try:
        items = list(parse_many(value))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a rate such as 600/minute or 100 per 10 seconds"
        ) from None
    if len(items) != 1:
        raise ValueError(f"{value!r} holds {len(items)} rates; give exactly one")
    item = items[0]
    if not 1 <= item.amount <= MAX_QUOTA:
        raise ValueError(f"{value!r}: the count must be 1 to {MAX_QUOTA}")
    if not 1 <= item.get_expiry() <= MAX_WINDOW_SECONDS:
        raise ValueError(f"{value!r}: the window must be 1 second to 1 day")
    return item


class RateLimitSettings(SettingsGroup):
    """Requests per user and per client address (api/ratelimit.py)."""

    # Off: no limit, no Redis round trip per request.
    rate_limit_enabled: bool = True
    # Requests one user (a valid bearer token's subject) may make per window,
    # from every address together.
    rate_limit_per_user: str = "600/minute"
    # Requests one client address (IPv6: one /64) may make per window,
    # anonymous and authenticated together: higher than a user's, so that a
    # few users behind one NAT fit, and so that one address cannot multiply
    # its share by opening many accounts.
    rate_limit_per_address: str = "1200/minute"

    @field_validator("rate_limit_per_user", "rate_limit_per_address")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value.strip()

    @property
    def user_rate(self) -> RateLimitItem:
        """RATE_LIMIT_PER_USER, parsed."""
        return parse_rate(self.rate_limit_per_user)

    @property
    def address_rate(self) -> RateLimitItem:
        """RATE_LIMIT_PER_ADDRESS, parsed."""
        return parse_rate(self.rate_limit_per_address)
