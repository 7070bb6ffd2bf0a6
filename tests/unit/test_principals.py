"""The per-process cache of callers."""

from __future__ import annotations

import uuid

from api.principals import Principal, PrincipalCache, TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def principal() -> Principal:
    return Principal(uuid.uuid4(), is_superuser=False)


def test_an_entry_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = PrincipalCache(5, clock=clock)
    caller = principal()
    cache.put(caller)
    clock.now += 4.9
    assert cache.get(caller.id) == caller
    clock.now += 0.1
    assert cache.get(caller.id) is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(0)
    caller = principal()
    cache.put(caller)
    assert cache.get(caller.id) is None


def test_the_least_recently_used_go_first() -> None:
    cache = PrincipalCache(60, max_entries=2)
    first, second, third = principal(), principal(), principal()
    cache.put(first)
    cache.put(second)
    assert cache.get(first.id) == first  # now the most recent
    cache.put(third)
    assert cache.get(second.id) is None
    assert cache.get(first.id) == first
    assert cache.get(third.id) == third


def test_forget() -> None:
    cache = PrincipalCache(60)
    caller = principal()
    cache.put(caller)
    cache.forget(caller.id)
    assert cache.get(caller.id) is None


def test_a_token_is_verified_once_and_refused_from_its_expiry() -> None:
    clock = Clock()
    tokens = TokenCache(clock=clock)
    user_id = uuid.uuid4()
    calls: list[str] = []

    def verify(token: str) -> tuple[uuid.UUID, float] | None:
        calls.append(token)
        return (user_id, clock.now + 60) if token == "good" else None

    assert tokens.subject("good", verify) == user_id
    assert tokens.subject("good", verify) == user_id
    assert calls == ["good"]
    clock.now += 60
    assert tokens.subject("good", verify) is None
    assert tokens.subject("bad", verify) is None
    assert tokens.subject("bad", verify) is None
    assert calls == ["good", "bad", "bad"]  # an invalid token is never cached


def test_the_token_cache_is_bounded() -> None:
    tokens = TokenCache(max_entries=2)
    for n in range(3):
        assert tokens.subject(f"t{n}", lambda _: (uuid.uuid4(), 2e9)) is not None
    assert len(tokens._entries) == 2
