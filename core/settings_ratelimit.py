"""Settings of the request rate limits (a group of core.settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import field_validator

from core.settings_base import SettingsGroup

# Bounds of one rate: a counter per user or address lives for one window in
# Redis, so the window is at most a day; a quota past a million requests a
# window would not limit anything.
MAX_QUOTA = 1_000_000
MAX_WINDOW_SECONDS = 86_400


# Seconds of each window unit. A rate reads as the ``limits`` library's
# notation does (``600/minute``, ``100 per 10 seconds``, ``10 / 2 hours``),
# parsed here: that library, with what it imports, cost each api process
# about 2.5 MB for this one parse (its strategies were never used).
UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86_400,
    "month": 30 * 86_400,
    "year": 12 * 30 * 86_400,
}
_RATE = re.compile(
    r"\s*([0-9]+)\s*(?:/|per)\s*([0-9]+)?\s*(" + "|".join(UNITS) + r")s?\s*", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[,;|]")


@dataclass(frozen=True, slots=True)
class Rate:
    """``amount`` requests per ``multiples`` ``unit`` s."""

    amount: int
    multiples: int
    unit: str

    @property
    def seconds(self) -> int:
        """The window's length."""
        return self.multiples * UNITS[self.unit]

    def key_for(self, *parts: str) -> str:
        """The Redis key of this rate's counter for ``parts``, such as
        ratelimit/user/<id>/600/1/minute: a changed rate starts afresh."""
        return "/".join(("ratelimit", *parts, str(self.amount), str(self.multiples), self.unit))


def parse_rate(value: str) -> Rate:
    """One rate (``600/minute``, ``100 per 10 seconds``); ValueError naming
    the bounds otherwise."""
    pieces = _SEPARATORS.split(value)
    matches = [_RATE.fullmatch(piece) for piece in pieces]
    if not value.strip() or not all(matches):
        raise ValueError(f"{value!r} is not a rate such as 600/minute or 100 per 10 seconds")
    if len(pieces) != 1:
        raise ValueError(f"{value!r} holds {len(pieces)} rates; give exactly one")
    amount, multiples, unit = matches[0].groups()  # type: ignore[union-attr]  # all matched
    rate = Rate(int(amount), int(multiples or 1), unit.lower())
    if not 1 <= rate.amount <= MAX_QUOTA:
        raise ValueError(f"{value!r}: the count must be 1 to {MAX_QUOTA}")
    if not 1 <= rate.seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(f"{value!r}: the window must be 1 second to 1 day")
    return rate


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
    def user_rate(self) -> Rate:
        """RATE_LIMIT_PER_USER, parsed."""
        return parse_rate(self.rate_limit_per_user)

    @property
    def address_rate(self) -> Rate:
        """RATE_LIMIT_PER_ADDRESS, parsed."""
        return parse_rate(self.rate_limit_per_address)
