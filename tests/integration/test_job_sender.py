"""The API's job sender against Celery's own producer, on the real Redis.

``core.queue.JobSender`` writes Celery's message by hand (one LPUSH), so that
the API need not load Celery. Here both send to queues of their own on the
test broker (Redis db 1, which no worker consumes) and the two messages must
be the same but for the ids each message gets afresh; the e2e tests run the
sender's messages through a real worker, and tests/unit/test_lean_imports.py
shows that the api loads no Celery.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from uuid import uuid4

import pytest
from celery import Celery
from redis.asyncio import Redis

from api.redis_pipeline import PipelinedConnection, encode
from core.queue import (
    REQUEST_ID_HEADER,
    SEND_RETRY_POLICY,
    SEND_TIMEOUT_SECONDS,
    TASK_RUN_JOB,
    JobSender,
    send_job,
)
from core.settings import Settings

# Fresh for every message (or every sending process): compared by shape only.
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to", "origin"}


def _strip(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its per-message ids blanked and its body decoded."""
    out: dict[str, Any] = {}
    for key, value in message.items():
        if key in PER_MESSAGE:
            assert isinstance(value, str), key
            assert value, key
            out[key] = "<id>"
        elif key == "body":
            out[key] = json.loads(base64.b64decode(value))
        elif isinstance(value, dict):
            out[key] = _strip(value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("pusher", ["pipelined", "redis-py"])
async def test_the_sender_writes_the_message_celery_writes(
    settings: Settings, producer: Celery, pusher: str
) -> None:
    """Through the api's pipelined connection, or a redis-py client."""
    queue = f"sender-test-{uuid4().hex[:8]}"
    job_id = uuid4()
    headers = {REQUEST_ID_HEADER: "req-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    redis = Redis.from_url(settings.redis.redis_url)
    pipelined = PipelinedConnection(settings.redis.redis_url, timeout=SEND_TIMEOUT_SECONDS)
    try:
        via = pipelined if pusher == "pipelined" else redis
        await JobSender(via, queue).send(job_id, dict(headers))
        producer.send_task(
            TASK_RUN_JOB,
            args=[str(job_id)],
            headers=dict(headers),
            queue=queue + "-celery",
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
        ours = [json.loads(m) for m in await redis.lrange(queue, 0, -1)]
        theirs = [json.loads(m) for m in await redis.lrange(queue + "-celery", 0, -1)]
        assert len(ours) == len(theirs) == 1
        theirs[0]["properties"]["delivery_info"]["routing_key"] = queue
        assert _strip(ours[0]) == _strip(theirs[0])
        assert ours[0]["headers"]["id"] == ours[0]["headers"]["root_id"]
        assert ours[0]["headers"][REQUEST_ID_HEADER] == "req-1"
        assert ours[0]["headers"]["argsrepr"] == repr([str(job_id)])
    finally:
        await redis.delete(queue, queue + "-celery", f"_kombu.binding.{queue}-celery")
        await redis.aclose()
        await pipelined.aclose()


async def test_a_dropped_connection_is_replaced_and_the_push_sent(settings: Settings) -> None:
    """Redis dropped the sender's connection (a restart, an idle timeout):
    the next sends go out on a new one, none lost."""
    queue = f"sender-test-{uuid4().hex[:8]}"
    redis = Redis.from_url(settings.redis.redis_url)
    pipelined = PipelinedConnection(settings.redis.redis_url, timeout=SEND_TIMEOUT_SECONDS)
    sender = JobSender(pipelined, queue)
    try:
        await sender.send(uuid4(), {})
        name = f"sender-{uuid4().hex[:8]}"
        assert await pipelined.lpush(f"{queue}-probe", b"x") == 1
        await pipelined._send(encode(b"CLIENT", b"SETNAME", name.encode()))
        assert await redis.client_kill_filter(_id=await _id(redis, name)) == 1
        sent = [uuid4() for _ in range(3)]
        for job_id in sent:
            await sender.send(job_id, {})
        bodies = [
            json.loads(base64.b64decode(json.loads(m)["body"]))
            for m in await redis.lrange(queue, 0, 2)
        ]
        assert {body[0][0] for body in bodies} == {str(job_id) for job_id in sent}
        assert await redis.llen(queue) == 4
    finally:
        await redis.delete(queue, f"{queue}-probe")
        await redis.aclose()
        await pipelined.aclose()


async def _id(redis: Redis, name: str) -> str:
    """The client id of the connection named ``name``."""
    for client in await redis.client_list():
        if client.get("name") == name:
            return str(client["id"])
    raise AssertionError(f"no client named {name}")


async def test_a_hung_redis_is_given_up_on_in_bounded_time() -> None:
    """A server that accepts and never answers: the send gives up within its
    bound, the job would stay queued for the relay, and the connection is
    dropped, so the next send does not wait on it."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipelined = PipelinedConnection(f"redis://127.0.0.1:{port}/0", timeout=SEND_TIMEOUT_SECONDS)
    try:
        started = time.monotonic()
        assert await send_job(JobSender(pipelined), uuid4(), request_id="r") is False
        assert time.monotonic() - started < SEND_TIMEOUT_SECONDS + 1
        assert accepted, "the sender never connected"
        assert pipelined._connection is None
    finally:
        await pipelined.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_each_message_has_its_own_ids(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis.redis_url)
    try:
        sender = JobSender(redis)
        first, second = (json.loads(sender.message(uuid4(), {})) for _ in range(2))
        assert first["headers"]["id"] != second["headers"]["id"]
        assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
        assert first["properties"]["delivery_info"]["routing_key"] == "jobs"
    finally:
        await redis.aclose()


async def test_an_unreachable_broker_is_reported_in_bounded_time() -> None:
    # Nothing listens on port 1: the send fails, the job would stay queued
    # for the relay, and the request does not wait past the send's bound.
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        started = time.monotonic()
        assert await send_job(JobSender(redis), uuid4(), request_id="r") is False
        assert time.monotonic() - started < SEND_TIMEOUT_SECONDS + 1
    finally:
        await redis.aclose()
