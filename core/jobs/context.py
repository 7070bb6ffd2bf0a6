"""What a job handler gets (:class:`JobContext`) and returns (:class:`Output`).

A handler does all of its writes in the session it is given; the outcome is
recorded in that same transaction, so a run's effects and its ``succeeded``
commit together or not at all. Progress and heartbeats go through their own
short transactions, so that the API sees them while the run goes on (see
README, Jobs: delivery).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.jobs import repository
from core.models import Job
from core.settings import JobSettings

log = logging.getLogger(__name__)


class JobError(Exception):
    """A failure to report to the job's owner as it is (bad input, say)."""


class JobLost(Exception):
    """This run no longer owns its job: it was cancelled, or the relay took it
    back and another run claimed it. The run's work is rolled back."""


@dataclass(frozen=True)
class ResultFile:
    """A file a job produced, served as its result with this media type and
    file name."""

    content: bytes
    media_type: str
    filename: str


@dataclass
class Output:
    """What a successful run records: a small JSON result, the counts it
    reports, and optionally a file."""

    result: dict[str, Any] | None = None
    counts: dict[str, int] | None = None
    result_file: ResultFile | None = None


@dataclass
class JobContext:
    """One run of a job: the claimed row, its attempt number, its input and a
    way to report progress."""

    job: Job
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: JobSettings
    lost: bool = field(default=False)

    @property
    def id(self) -> UUID:
        """The job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """Which attempt this run is (1 for the first)."""
        return self.job.attempts

    async def input_file(self) -> bytes | None:
        """The file uploaded with the job, if any."""
        async with self.sessionmaker() as session:
            return await repository.input_file(session, self.id)

    async def progress(self, percent: int, counts: dict[str, int] | None = None) -> None:
        """Record progress (which is also a heartbeat). Raises :class:`JobLost`
        when the run no longer owns the job, so the handler stops early."""
        if self.lost:
            raise JobLost
        async with self.sessionmaker() as session, transaction(session):
            owned = await repository.record_heartbeat(
                session, self.id, self.attempt, progress=percent, counts=counts
            )
        if not owned:
            self.lost = True
            raise JobLost

    async def keep_alive(self, interval: float) -> None:
        """Heartbeat every ``interval`` seconds until cancelled or the job is lost."""
        while not self.lost:
            await asyncio.sleep(interval)
            try:
                async with self.sessionmaker() as session, transaction(session):
                    owned = await repository.record_heartbeat(session, self.id, self.attempt)
            except Exception as exc:  # a missed beat is not fatal; the next may pass
                log.warning("job %s: heartbeat failed: %s", self.id, exc)
                continue
            if not owned:
                self.lost = True
