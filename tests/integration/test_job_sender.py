"""The API's job sender against Celery's own producer, on the real Redis.

``core.queue.JobSender`` writes Celery's message by hand (one LPUSH), so that
the API need not load Celery. Here both send to queues of their own on the
test broker (Redis db 1, which no worker consumes) and the two messages must
be the same but for the ids each message gets afresh; the e2e tests run the
sender's messages through a real worker, and tests/unit/test_lean_imports.py
shows that the api loads no Celery.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from uuid import uuid4

from celery import Celery
from redis.asyncio import Redis

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


async def test_the_sender_writes_the_message_celery_writes(
    settings: Settings, producer: Celery
) -> None:
    queue = f"sender-test-{uuid4().hex[:8]}"
    job_id = uuid4()
    headers = {REQUEST_ID_HEADER: "req-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    redis = Redis.from_url(settings.redis.redis_url)
    try:
        await JobSender(redis, queue).send(job_id, dict(headers))
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
