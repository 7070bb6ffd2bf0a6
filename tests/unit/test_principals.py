"""The per-process cache of callers."""

from __future__ import annotations

import uuid

from api.principals import Principal, PrincipalCache, TokenCache
from core.security import TokenClaims


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def principal(user_id: uuid.UUID | None = None) -> Principal:
    return Principal(user_id or uuid.uuid4(), is_superuser=False, session_id=uuid.uuid4())


def test_an_entry_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = PrincipalCache(5, clock=clock)
    caller = principal()
    cache.put(caller)
    clock.now += 4.9
    assert cache.get(caller.session_id) == caller
    clock.now += 0.1
    assert cache.get(caller.session_id) is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(0)
    caller = principal()
    cache.put(caller)
    assert cache.get(caller.session_id) is None


def test_the_least_recently_used_go_first() -> None:
    cache = PrincipalCache(60, max_entries=2)
    first, second, third = principal(), principal(), principal()
    cache.put(first)
    cache.put(second)
    assert cache.get(first.session_id) == first  # now the most recent
    cache.put(third)
    assert cache.get(second.session_id) is None
    assert cache.get(first.session_id) == first
    assert cache.get(third.session_id) == third


def test_forget_a_session_or_every_session_of_a_user() -> None:
    cache = PrincipalCache(60)
    caller = principal()
    cache.put(caller)
    cache.forget(session_ids=[caller.session_id])
    assert cache.get(caller.session_id) is None

    user_id = uuid.uuid4()
    phone, laptop, other = principal(user_id), principal(user_id), principal()
    for entry in (phone, laptop, other):
        cache.put(entry)
    cache.forget(user_id=user_id)
    assert cache.get(phone.session_id) is None
    assert cache.get(laptop.session_id) is None
    assert cache.get(other.session_id) == other


def test_a_lookup_older_than_a_revocation_is_not_kept() -> None:
    cache = PrincipalCache(60)
    caller = principal()
    seen = cache.generation  # a request starts its database lookup
    cache.forget(session_ids=[caller.session_id])  # another request revokes
    cache.put(caller, seen=seen)  # the first lookup ends
    assert cache.get(caller.session_id) is None
    cache.put(caller, seen=cache.generation)
    assert cache.get(caller.session_id) == caller


def test_a_token_is_verified_once_and_refused_from_its_expiry() -> None:
    clock = Clock()
    tokens = TokenCache(clock=clock)
    claims = TokenClaims(uuid.uuid4(), uuid.uuid4(), clock.now + 60)
    calls: list[str] = []

    def verify(token: str) -> TokenClaims | None:
        calls.append(token)
        return claims if token == "good" else None

    assert tokens.claims("good", verify) == claims
    assert tokens.claims("good", verify) == claims
    assert calls == ["good"]
    clock.now += 60
    assert tokens.claims("good", verify) is None
    assert tokens.claims("bad", verify) is None
    assert tokens.claims("bad", verify) is None
    assert calls == ["good", "bad", "bad"]  # an invalid token is never cached


def test_the_token_cache_is_bounded() -> None:
    tokens = TokenCache(max_entries=2)
    for n in range(3):
        assert (
            tokens.claims(f"t{n}", lambda _: TokenClaims(uuid.uuid4(), uuid.uuid4(), 2e9))
            is not None
        )
    assert len(tokens._entries) == 2
