"""Exactly one scheduler: the lease in the real Redis, and two real
``celery beat`` processes side by side, one of them killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
from celery import Celery
from redis import Redis

from core.queue import MAINTENANCE_QUEUE, celery_config
from core.settings import Settings
from worker.leader import LAST_RUNS_KEY, LEASE_KEY, LeaderScheduler, Lease

# The relay's interval and the lease's TTL the two schedulers run with.
INTERVAL = 1.0
TTL = 2.0
# A Redis database of its own: the relay messages counted are the ones these
# schedulers sent, and other tests' flushes do not touch it.
BEAT_DB = 13
WINDOW = 6.0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until it is true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def redis(settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.redis.redis_url)
    client.delete(LEASE_KEY, LAST_RUNS_KEY)
    yield client
    client.delete(LEASE_KEY, LAST_RUNS_KEY)
    client.close()


def test_one_holder_at_a_time_and_a_dead_one_is_replaced(redis: Redis) -> None:
    first = Lease(redis, LEASE_KEY, 1.0, "first")
    second = Lease(redis, LEASE_KEY, 1.0, "second")
    assert first.refresh() == "first"
    assert first.held()
    assert second.refresh() == "first"
    assert not second.held()
    assert first.refresh() == "first"  # renewed
    second.release()  # not its lease: nothing happens
    assert redis.get(LEASE_KEY) == b"first"
    # "first" stops renewing (killed): the lease runs out and "second" takes it.
    wait_for(lambda: second.refresh() == "second", 2.0, "second takes the lease")
    assert second.held()
    assert first.refresh() == "second"
    assert not first.held()
    second.release()
    assert redis.get(LEASE_KEY) is None
    assert first.refresh() == "first"


def test_the_next_leader_goes_on_from_the_last_run(settings: Settings, redis: Redis) -> None:
    """An hourly task run by one scheduler is not run again by the one that
    takes over: the last run travels in Redis."""
    app = Celery("beat-test")
    app.conf.update(celery_config(settings))
    app.conf.beat_schedule = {"hourly": {"task": "noop", "schedule": 3600}}
    leader, other = LeaderScheduler(app=app), LeaderScheduler(app=app)
    leader.tick()
    other.tick()
    assert leader._lease.held()
    assert not other._lease.held()
    ran = leader.schedule["hourly"]
    ran.last_run_at = ran.default_now() - timedelta(minutes=50)
    leader.reserve(ran)  # what the leader does just before it sends
    recorded = leader.schedule["hourly"].last_run_at
    assert recorded is not None
    assert other.schedule["hourly"].last_run_at != recorded

    leader.close()  # hands the lease over
    assert redis.get(LEASE_KEY) is None
    other._next_refresh = 0.0  # its next tick refreshes at once
    other.tick()
    assert other._lease.held()
    took_over = other.schedule["hourly"].last_run_at
    assert took_over is not None
    assert abs((took_over - recorded).total_seconds()) < 0.001
    due, _ = other.is_due(other.schedule["hourly"])
    assert not due
    other.close()


def start_beat(env: dict[str, str], log: IO[bytes], schedule: Path) -> subprocess.Popen[bytes]:
    """``celery -A worker.app beat``, as the scheduler service runs it."""
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "--loglevel", "INFO"]
    command += ["--schedule", str(schedule)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def holder_pid(redis: Redis) -> int | None:
    """The pid named by the lease (host:pid:tag), or None while it is free."""
    value = redis.get(LEASE_KEY)
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return int(text.split(":")[1])


def test_two_schedulers_send_once_per_interval_and_take_over(
    settings: Settings, tmp_path: Path
) -> None:
    url = settings.redis.redis_url.rsplit("/", 1)[0] + f"/{BEAT_DB}"
    beat_redis = Redis.from_url(url)
    beat_redis.flushdb()
    env = os.environ | {
        "REDIS_URL": url,
        "RELAY_INTERVAL_SECONDS": str(INTERVAL),
        "SCHEDULER_LOCK_TTL_SECONDS": str(TTL),
        "LOG_FORMAT": "text",
    }

    def sent() -> int:
        """Relay messages sent so far (no worker takes them)."""
        return int(beat_redis.llen(MAINTENANCE_QUEUE))

    beats: dict[int, subprocess.Popen[bytes]] = {}
    logs = [(tmp_path / f"beat{n}.log").open("wb") for n in (1, 2)]
    try:
        for n, log in enumerate(logs):
            beat = start_beat(env, log, tmp_path / f"celerybeat-schedule-{n}")
            beats[beat.pid] = beat
        wait_for(lambda: holder_pid(beat_redis) in beats, 30, "a scheduler leads")
        wait_for(lambda: sent() > 0, 10, "the leader sends the relay")

        before = sent()
        time.sleep(WINDOW)
        # Two schedulers without the lease would send about 2 x WINDOW.
        both = sent() - before
        assert WINDOW / INTERVAL - 2 <= both <= WINDOW / INTERVAL + 1

        leader = holder_pid(beat_redis)
        assert leader is not None
        survivor = next(pid for pid in beats if pid != leader)
        os.kill(leader, signal.SIGKILL)
        beats.pop(leader).wait(5)
        took = wait_for(lambda: holder_pid(beat_redis) == survivor, 2 * TTL, "take-over")
        print(f"take-over {took:.2f} s after SIGKILL (TTL {TTL} s)")

        before = sent()
        time.sleep(WINDOW)
        alone = sent() - before
        assert WINDOW / INTERVAL - 2 <= alone <= WINDOW / INTERVAL + 1
        print(f"relay sent {both} times in {WINDOW} s by two schedulers, {alone} by one")

        # A clean stop gives the lease up at once.
        beats[survivor].send_signal(signal.SIGTERM)
        beats.pop(survivor).wait(10)
        assert beat_redis.get(LEASE_KEY) is None
    finally:
        for beat in beats.values():
            beat.kill()
            beat.wait(5)
        for log in logs:
            log.close()
        beat_redis.flushdb()
        beat_redis.close()
    output = "".join(p.read_text() for p in tmp_path.glob("beat*.log"))
    assert "leads: it sends the periodic tasks" in output
    assert "stands by" in output
    assert "Traceback" not in output
