"""The Celery configuration shared by the worker and by the API, which only sends.

The broker message carries a job id and nothing else; the job row in Postgres
is the source of truth (see ``core.jobs``).

The API sends with :class:`JobSender`, not with a Celery app: a message is one
``LPUSH`` of a Celery (protocol 2) message onto the queue's Redis list,
through a Redis connection of the API process's own. Celery and kombu stay out of the API's
processes (about 13 MB of each api worker's memory, and a thread hop per
send); ``tests/integration/test_job_sender.py`` holds the message to the one
Celery itself builds. The worker sends with its Celery app.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from uuid import UUID

import anyio

from core import tracing
from core.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

TASK_RUN_JOB = "jobs.run"
TASK_RELAY = "jobs.relay"
TASK_SESSION_CLEANUP = "users.cleanup_sessions"
# Expired logins (auth sessions, refresh tokens) are deleted this often.
SESSION_CLEANUP_INTERVAL_SECONDS = 3600
TASK_PURGE_RESULTS = "jobs.purge_results"
# Result files past RESULT_RETENTION_HOURS are deleted this often (the
# result route answers 410 from the moment they expire, purged or not).
RESULT_PURGE_INTERVAL_SECONDS = 600
JOB_QUEUE = "jobs"
# The relay has its own queue, so that it never waits behind a backlog of
# queued jobs. It still needs a free worker process: while every process runs
# a job, relay messages expire unrun and recovery waits for the next free one
# (a delay, never a loss). A worker started with `--queues maintenance`
# alone would make the relay independent of the job load.
MAINTENANCE_QUEUE = "maintenance"
# Hard limit on one task run; the broker's visibility timeout must be longer, or
# Redis would hand a still-running task to a second worker.
TASK_TIME_LIMIT_SECONDS = 30 * 60
VISIBILITY_TIMEOUT_SECONDS = 2 * TASK_TIME_LIMIT_SECONDS

# Sending must not hang a request when Redis is down: a couple of quick retries,
# then the job stays queued in Postgres and is re-sent later.
SEND_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


# The message header naming the API request behind a job.
REQUEST_ID_HEADER = "x_request_id"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Reliability settings: a task is acknowledged only after it ran, and a
    worker that dies mid-task hands it back to the broker."""
    return {
        "broker_url": settings.redis.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": 4,
            "socket_timeout": 10,
        },
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "task_time_limit": TASK_TIME_LIMIT_SECONDS,
        "task_soft_time_limit": TASK_TIME_LIMIT_SECONDS - 60,
        "task_default_queue": JOB_QUEUE,
        "task_routes": {
            TASK_RELAY: {"queue": MAINTENANCE_QUEUE},
            TASK_SESSION_CLEANUP: {"queue": MAINTENANCE_QUEUE},
            TASK_PURGE_RESULTS: {"queue": MAINTENANCE_QUEUE},
        },
        # Every few seconds the scheduler asks a worker to run the relay. A
        # relay message older than two intervals is dropped: a newer one exists.
        "beat_schedule": {
            "relay": {
                "task": TASK_RELAY,
                "schedule": settings.jobs.relay_interval_seconds,
                "options": {"expires": 2 * settings.jobs.relay_interval_seconds},
            },
            "session-cleanup": {
                "task": TASK_SESSION_CLEANUP,
                "schedule": SESSION_CLEANUP_INTERVAL_SECONDS,
                "options": {"expires": SESSION_CLEANUP_INTERVAL_SECONDS},
            },
            "result-purge": {
                "task": TASK_PURGE_RESULTS,
                "schedule": RESULT_PURGE_INTERVAL_SECONDS,
                "options": {"expires": RESULT_PURGE_INTERVAL_SECONDS},
            },
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.jobs.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def create_producer(settings: Settings) -> Celery:
    """A Celery app used only to send messages (no tasks registered)."""
    from celery import Celery

    producer = Celery("producer")
    producer.conf.update(celery_config(settings))
    return producer


# A send gives up after this long (Redis away): the job stays queued in
# Postgres and the relay sends it later. The client's own retries run inside.
SEND_TIMEOUT_SECONDS = 3.0
# What Celery's own producer puts in the body after the arguments (no
# callbacks, chain or chord).
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class ListPusher(Protocol):
    """What the sender pushes with: a redis-py client, or the api's
    pipelined connection (``api.redis_pipeline.PipelinedConnection``)."""

    def lpush(self, name: str, *values: bytes) -> Awaitable[Any]:
        """Push ``values`` onto the list ``name``."""


class JobSender:
    """Sends ``jobs.run`` messages straight onto the queue's Redis list, as
    kombu's Redis transport would: the same JSON envelope (headers of Celery's
    message protocol 2, a base64 body of ``[args, kwargs, embed]``), ``LPUSH``
    to the list named after the queue (priority 0), where the worker's
    ``BRPOP`` takes it."""

    def __init__(self, redis: ListPusher, queue: str = JOB_QUEUE) -> None:
        self.redis = redis
        self.queue = queue
        # As Celery: the sending process, and a reply address per process
        # (results are ignored, so nothing is ever sent there).
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self.reply_to = str(uuid.uuid4())

    def message(self, job_id: UUID, headers: dict[str, Any]) -> bytes:
        """The serialised message asking a worker to run job ``job_id``."""
        task_id = str(uuid.uuid4())
        args = [str(job_id)]
        body = json.dumps([args, {}, _EMBED]).encode()
        envelope = {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": TASK_RUN_JOB,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": repr(args),
                "kwargsrepr": "{}",
                "origin": self.origin,
                "ignore_result": None,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
                **headers,
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": self.reply_to,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return json.dumps(envelope).encode()

    async def send(self, job_id: UUID, headers: dict[str, Any]) -> None:
        """Push the message; raises when Redis does not take it in time."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                await self.redis.lpush(self.queue, self.message(job_id, headers))
        except TimeoutError:
            # A pusher with a connection of its own drops it: Redis, or the
            # way to it, may hang, and the next send should not wait on it.
            if abort := getattr(self.redis, "abort", None):
                abort()
            raise


# What enqueueing code sends with: the API's JobSender, the worker's Celery app.
Producer: TypeAlias = "JobSender | Celery"


async def send_job(producer: Producer, job_id: UUID, *, request_id: str | None = None) -> bool:
    """Ask a worker to run job ``job_id``. Returns False when the broker is
    unreachable: the job stays queued and the relay re-sends it.

    ``request_id`` (the id of the API request that created the job) travels in
    the message's headers, so the worker's log lines carry it from the start;
    with tracing on, so does the context of the publish span around the send.
    """
    headers: dict[str, Any] = {REQUEST_ID_HEADER: request_id} if request_id else {}

    def celery_send(app: Celery) -> None:
        app.send_task(
            TASK_RUN_JOB,
            args=[str(job_id)],
            headers=headers or None,
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )

    try:
        with tracing.publish_span(job_id, JOB_QUEUE, headers):
            if isinstance(producer, JobSender):
                await producer.send(job_id, headers)
            else:
                await anyio.to_thread.run_sync(celery_send, producer)
    except Exception as exc:  # the broker's errors are many (kombu, redis, OS)
        log.warning("could not send job %s to the broker: %s", job_id, exc)
        return False
    return True
