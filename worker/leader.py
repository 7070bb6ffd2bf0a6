"""Exactly one scheduler: a beat scheduler that sends periodic tasks only while
it holds a lease in Redis.

Two ``celery beat`` processes at once (a rolling update, a second scheduler
started by mistake) would each send every periodic task. With
:class:`LeaderScheduler` both run, but only the holder of the lease sends. The
holder renews it every third of SCHEDULER_LOCK_TTL_SECONDS and the others try
to take it as often, so a holder killed without a word is replaced within 4/3
of the TTL (the lease runs out, the next try takes it); one that stops cleanly
releases it at once.

The last run of every entry is kept in Redis too: whoever takes over (or a
restarted scheduler) goes on where the last holder left off, instead of
starting every interval anew and running an hourly task twice in the hour.
Written by hand rather than with celery-redbeat: a lease and a hash are a few
lines, and the schedule itself stays in code (core.queue), not in Redis.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any, cast

from celery.beat import ScheduleEntry, Scheduler
from redis import Redis
from redis.exceptions import RedisError

from core.settings import get_settings

log = logging.getLogger("appstack.scheduler")

LEASE_KEY = "appstack:scheduler:leader"
LAST_RUNS_KEY = "appstack:scheduler:last-runs"
# The lease is trusted locally for a little less than its TTL, counted from
# before the request that took or renewed it: Redis' clock and ours may run
# at slightly different rates.
TRUST_FRACTION = 0.9

# Take the lease when it is free, renew it when it is ours; answer its holder.
_TAKE_OR_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return ARGV[1]
end
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"""
# Delete the lease only when it is still ours.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def identity() -> str:
    """This process, as the lease names it: host, pid and a random tag (a
    restarted container may reuse both)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """A lease in Redis with a TTL, held by one identity at a time."""

    def __init__(self, redis: Redis, key: str, ttl: float, holder: str) -> None:
        self.key = key
        self.ttl = ttl
        self.holder = holder
        self._take_or_renew = redis.register_script(_TAKE_OR_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._trusted_until = 0.0

    def held(self) -> bool:
        """True while the lease is certainly ours."""
        return time.monotonic() < self._trusted_until

    def refresh(self) -> str | None:
        """Take the lease if free, renew it if ours; answer its holder (None
        when Redis cannot be reached: the lease then runs out on its own)."""
        started = time.monotonic()
        try:
            answer = self._take_or_renew(keys=[self.key], args=[self.holder, int(self.ttl * 1000)])
        except RedisError as exc:
            log.warning("scheduler lease %s: Redis did not answer (%s)", self.key, exc)
            return None
        holder = answer.decode() if isinstance(answer, bytes) else str(answer)
        if holder == self.holder:
            self._trusted_until = started + self.ttl * TRUST_FRACTION
        else:
            self._trusted_until = 0.0
        return holder

    def release(self) -> None:
        """Give the lease up now, if it is still ours."""
        self._trusted_until = 0.0
        try:
            self._release(keys=[self.key], args=[self.holder])
        except RedisError as exc:  # it runs out on its own
            log.warning("scheduler lease %s: could not release it (%s)", self.key, exc)


class LeaderScheduler(Scheduler):
    """celery beat's scheduler, sending due tasks only while holding the lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        ttl = settings.jobs.scheduler_lock_ttl_seconds
        # A refresh never blocks for longer than the step between two.
        self._step = ttl / 3
        self._redis = Redis.from_url(
            settings.redis.redis_url,
            socket_timeout=self._step,
            socket_connect_timeout=self._step,
        )
        self._lease = Lease(self._redis, LEASE_KEY, ttl, identity())
        self._next_refresh = 0.0
        self._leading = False
        self._last_holder: str | None = None
        # --schedule's file (schedule_filename) is ignored: the last runs are
        # kept in Redis instead.
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Refresh the lease when due, then run the schedule if it is ours;
        never sleep past the next refresh."""
        if time.monotonic() >= self._next_refresh:
            self._refresh()
            self._next_refresh = time.monotonic() + self._step
        until_refresh = max(self._next_refresh - time.monotonic(), 0.0)
        if not self._lease.held():
            return until_refresh
        return min(super().tick(*args, **kwargs), until_refresh)

    def _refresh(self) -> None:
        """Refresh the lease and log every change of leader."""
        holder = self._lease.refresh()
        leading = self._lease.held()
        me = self._lease.holder
        if leading and not self._leading:
            log.info("scheduler %s leads: it sends the periodic tasks", me)
            self._resume()
        elif self._leading and not leading:
            log.warning("scheduler %s lost the lease (now held by %s)", me, holder)
        elif not leading and holder is not None and holder != self._last_holder:
            log.info("scheduler %s stands by: %s sends the periodic tasks", me, holder)
        self._leading = leading
        self._last_holder = holder

    def _resume(self) -> None:
        """Take every entry's last run from Redis, as the last leader left it."""
        try:
            runs = self._redis.hgetall(LAST_RUNS_KEY)
        except RedisError as exc:
            log.warning("scheduler: could not read the last runs (%s)", exc)
            return
        for name, entry in self.schedule.items():
            stamp = runs.get(name.encode())
            if stamp is not None:
                entry.last_run_at = datetime.fromtimestamp(float(stamp), UTC)
        # Rebuilt from the entries on the next tick.
        self._heap = None

    def reserve(self, entry: ScheduleEntry) -> Any:
        """Advance the entry (just before its task is sent) and record the run
        for whoever leads next."""
        # celery-types says event_t; Celery returns the advanced entry.
        new_entry = cast("ScheduleEntry", super().reserve(entry))
        last_run = new_entry.last_run_at
        if new_entry.name and last_run is not None:
            try:
                self._redis.hset(LAST_RUNS_KEY, new_entry.name, str(last_run.timestamp()))
            except RedisError as exc:
                log.warning("scheduler: could not record %s's run (%s)", new_entry.name, exc)
        return new_entry

    def close(self) -> None:
        """Hand the lease over at once on a clean stop (celery beat may close
        twice, and resume after: the next tick takes the lease again)."""
        if self._lease.held():
            self._lease.release()
            self._leading = False
            self._next_refresh = 0.0
            log.info("scheduler %s released the lease", self._lease.holder)
        super().close()
