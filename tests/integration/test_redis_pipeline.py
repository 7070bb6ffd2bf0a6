"""The rate limiter's Redis calls (api/redis_pipeline.py) against the real
Redis: concurrent calls share writes and each gets its own reply, a flushed
script cache is reloaded, an error reply fails its call only, and a dropped
connection is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from api.redis_pipeline import PipelinedScript, encode, parse
from core.settings import Settings

# Counts KEYS[1] up by ARGV[1]; with ARGV[1] = 0 an error reply.
SCRIPT = """
if tonumber(ARGV[1]) == 0 then return redis.error_reply('ERR zero') end
return {redis.call('INCRBY', KEYS[1], ARGV[1]), tonumber(ARGV[1])}
"""


@pytest.fixture
async def script(settings: Settings) -> AsyncIterator[PipelinedScript]:
    pipelined = PipelinedScript(settings.redis.redis_url, SCRIPT, timeout=2.0)
    yield pipelined
    await pipelined.aclose()


async def test_concurrent_calls_each_get_their_own_reply(script: PipelinedScript) -> None:
    replies = await asyncio.gather(*(script([f"pipe:{i % 7}"], [i + 1]) for i in range(200)))
    assert [reply[1] for reply in replies] == [i + 1 for i in range(200)]  # type: ignore[index]
    # Per key, the counts are the running sums of the calls in the order sent.
    for key in range(7):
        steps = [i + 1 for i in range(200) if i % 7 == key]
        sums = [sum(steps[: n + 1]) for n in range(len(steps))]
        assert [r[0] for i, r in enumerate(replies) if i % 7 == key] == sums  # type: ignore[index]


async def test_a_flushed_script_cache_is_reloaded(
    script: PipelinedScript, settings: Settings
) -> None:
    assert await script(["pipe:flush"], [1]) == [1, 1]
    redis = Redis.from_url(settings.redis.redis_url)
    try:
        await redis.script_flush()
    finally:
        await redis.aclose()
    assert await script(["pipe:flush"], [2]) == [3, 2]


async def test_an_error_reply_fails_its_call_only(script: PipelinedScript) -> None:
    results = await asyncio.gather(
        script(["pipe:err"], [1]),
        script(["pipe:err"], [0]),
        script(["pipe:err"], [1]),
        return_exceptions=True,
    )
    assert results[0] == [1, 1]
    assert results[2] == [2, 1]
    assert isinstance(results[1], ResponseError)
    assert "zero" in str(results[1])


async def test_a_dropped_connection_fails_its_calls_and_is_replaced(
    script: PipelinedScript,
) -> None:
    assert await script(["pipe:drop"], [1]) == [1, 1]
    waiting = asyncio.create_task(script(["pipe:drop"], [1]))
    await asyncio.sleep(0)
    script.abort()
    with pytest.raises(RedisConnectionError):
        await waiting
    assert await script(["pipe:drop"], [5]) in ([6, 5], [7, 5])  # the aborted one may have run


async def test_an_unreachable_redis_is_a_connection_error() -> None:
    dead = PipelinedScript("redis://127.0.0.1:1/0", SCRIPT, timeout=1.0)
    try:
        with pytest.raises(RedisConnectionError):
            await dead(["pipe:dead"], [1])
    finally:
        await dead.aclose()


def test_replies_are_parsed_whole_or_not_at_all() -> None:
    wire = b"*2\r\n:12\r\n$3\r\nabc\r\n-ERR bad\r\n+OK\r\n$-1\r\n"
    replies, position = [], 0
    while position < len(wire):
        reply, position = parse(wire, position)
        replies.append(reply)
    assert replies[0] == [12, b"abc"]
    assert isinstance(replies[1], ResponseError)
    assert str(replies[1]) == "ERR bad"
    assert replies[2:] == [b"OK", None]
    for cut in range(1, 16):  # any prefix of the array is incomplete
        assert parse(wire[:cut], 0)[1] == 0
    assert encode(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
