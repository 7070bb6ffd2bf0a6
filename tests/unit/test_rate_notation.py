"""Rates in the notation RATE_LIMIT_PER_USER / _PER_ADDRESS take (that of the
``limits`` library, which read them before; the expected values below are
what its ``parse_many`` returned for the same strings, keys included)."""

from __future__ import annotations

import pytest

from core.settings_ratelimit import Rate, parse_rate


@pytest.mark.parametrize(
    ("value", "rate", "seconds", "key"),
    [
        ("600/minute", Rate(600, 1, "minute"), 60, "ratelimit/user/u1/600/1/minute"),
        ("100 per 10 seconds", Rate(100, 10, "second"), 10, "ratelimit/user/u1/100/10/second"),
        ("10/2 hours", Rate(10, 2, "hour"), 7200, "ratelimit/user/u1/10/2/hour"),
        ("5 per second", Rate(5, 1, "second"), 1, "ratelimit/user/u1/5/1/second"),
        ("1/day", Rate(1, 1, "day"), 86_400, "ratelimit/user/u1/1/1/day"),
        ("10 / minute", Rate(10, 1, "minute"), 60, "ratelimit/user/u1/10/1/minute"),
        ("10/MINUTE", Rate(10, 1, "minute"), 60, "ratelimit/user/u1/10/1/minute"),
        (" 10 per 2 minutes ", Rate(10, 2, "minute"), 120, "ratelimit/user/u1/10/2/minute"),
    ],
)
def test_a_rate_reads_as_the_limits_library_read_it(
    value: str, rate: Rate, seconds: int, key: str
) -> None:
    parsed = parse_rate(value)
    assert parsed == rate
    assert parsed.seconds == seconds
    assert parsed.key_for("user", "u1") == key


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "is not a rate"),
        ("minute", "is not a rate"),
        ("600/fortnight", "is not a rate"),
        ("600 minutes", "is not a rate"),
        ("-5/minute", "is not a rate"),
        ("6.5/minute", "is not a rate"),
        ("10/second;100/minute", "holds 2 rates; give exactly one"),
        ("10/second, 100/minute", "holds 2 rates; give exactly one"),
        ("10/second;", "is not a rate"),
        ("0/minute", "the count must be 1 to 1000000"),
        ("1000001/minute", "the count must be 1 to 1000000"),
        ("5/0 seconds", "the window must be 1 second to 1 day"),
        ("5/2 days", "the window must be 1 second to 1 day"),
        ("3/month", "the window must be 1 second to 1 day"),
        ("1/" + "9" * 400 + " seconds", "the window must be 1 second to 1 day"),
    ],
)
def test_a_bad_rate_is_refused_saying_why(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_rate(value)
