"""What a job handler gets (:class:`JobContext`) and returns (:class:`Output`).

A handler does all of its writes in the session it is given; the outcome is
recorded in that same transaction, so a run's effects and its ``succeeded``
commit together or not at all. Progress and heartbeats go through their own
short transactions, so that the API sees them while the run goes on (see
README, Jobs: delivery). Files go in and out in chunks (README, Jobs:
files): a handler reads its upload one chunk at a time
(:meth:`JobContext.input_chunks`) and writes its result file piece by piece
(:meth:`JobContext.result_writer`), inside its run's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.jobs import files, repository
from core.models import Job, JobFileRole
from core.settings import JobSettings

log = logging.getLogger(__name__)


class JobError(Exception):
    """A failure to report to the job's owner as it is (bad input, say)."""


class JobLost(Exception):
    """This run no longer owns its job: it was cancelled, or the relay took it
    back and another run claimed it. The run's work is rolled back."""


class RunAgain(Exception):
    """Raised by a handler or its kind's ``settle``: roll this run's work
    back and run the handler once more, with :attr:`JobContext.again` set
    (say, to take a lock it went without, optimistically, the first time)."""


@dataclass(frozen=True)
class ResultFile:
    """A small file a job produced whole, served as its result with this
    media type and file name (the runner stores it in chunks). A large one
    is written with :meth:`JobContext.result_writer` instead."""

    content: bytes
    media_type: str
    filename: str


@dataclass(frozen=True)
class WrittenFile:
    """A result file already stored in chunks by a :class:`ResultWriter`:
    its size, and how it is served."""

    size: int
    media_type: str
    filename: str


@dataclass
class Output:
    """What a successful run records: a small JSON result, the counts it
    reports, and optionally a file."""

    result: dict[str, Any] | None = None
    counts: dict[str, int] | None = None
    result_file: ResultFile | WrittenFile | None = None


class ResultWriter:
    """A job's result file, written piece by piece in the run's transaction:
    whatever is written is buffered up to a chunk, and each full chunk
    inserted, so a cancelled or lost run leaves no chunk behind. At most
    ``max_bytes`` (what the owner's stored-files quota leaves); past it the
    job fails with an error that says so."""

    def __init__(
        self,
        session: AsyncSession,
        job_id: UUID,
        *,
        media_type: str,
        filename: str,
        max_bytes: int,
    ) -> None:
        self._session = session
        self._job_id = job_id
        self.media_type = media_type
        self.filename = filename
        self.max_bytes = max_bytes
        self.size = 0
        self._pending = bytearray()
        self._seq = 0
        self._closed = False

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the file."""
        if self._closed:
            raise RuntimeError("this result file is closed")
        self.size += len(data)
        if self.size > self.max_bytes:
            raise JobError(
                f"the result file is larger than what is left of your stored-files quota "
                f"({self.max_bytes} bytes, MAX_STORED_FILE_BYTES_PER_USER); results are "
                "deleted RESULT_RETENTION_HOURS after their job finished"
            )
        self._pending += data
        while len(self._pending) >= files.CHUNK_BYTES:
            await self._flush(files.CHUNK_BYTES)

    async def close(self) -> WrittenFile:
        """Store the last chunk; what the run's :class:`Output` returns."""
        if not self._closed:
            if self._pending:
                await self._flush(len(self._pending))
            self._closed = True
        return WrittenFile(self.size, self.media_type, self.filename)

    async def _flush(self, size: int) -> None:
        # A view of the buffer, released before the buffer shrinks.
        with memoryview(self._pending) as view, view[:size] as chunk:
            await files.insert_chunk(
                self._session, self._job_id, JobFileRole.result, self._seq, chunk
            )
        del self._pending[:size]
        self._seq += 1


@dataclass
class JobContext:
    """One run of a job: the claimed row, its attempt number, its input and a
    way to report progress."""

    job: Job
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: JobSettings
    lost: bool = field(default=False)
    # The handler runs again after it (or its kind's settle) said RunAgain.
    again: bool = field(default=False)
    # The start of the upload, when the claim's transaction read it already
    # (one query fewer per run; the first chunk holds a small file whole).
    prefetched: files.InputStart | None = field(default=None)

    @property
    def id(self) -> UUID:
        """The job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """Which attempt this run is (1 for the first)."""
        return self.job.attempts

    async def input_chunks(self) -> AsyncIterator[bytes]:
        """The file uploaded with the job, one chunk at a time, each read in a
        short query of its own, so that the run holds one chunk and no
        connection between them. Nothing when the job has no file. Raises
        :class:`JobLost` when the run no longer owns the job, or its file is
        deleted meanwhile (the job was cancelled, or given up by the relay)."""
        start, data = self.prefetched, None
        # Only the release before chunks stored it: read it whole. (Jobs
        # queued before the migration have both; the chunks are read.)
        if start is None or (start.legacy and start.size == 0):
            async with self.sessionmaker() as session:
                start = await files.input_start(session, self.id, self.attempt)
                if start is None:
                    self.lost = True
                    raise JobLost
                legacy = start.legacy and start.size == 0
                data = await files.legacy_input(session, self.id) if legacy else None
        if data is not None:  # stored by the release before chunks
            for offset in range(0, len(data), files.CHUNK_BYTES):
                yield data[offset : offset + files.CHUNK_BYTES]
            return
        count = files.chunk_count(start.size)
        if count and start.first is None:
            self.lost = True
            raise JobLost
        if start.first is not None:
            yield start.first
        for seq in range(1, count):
            async with self.sessionmaker() as session:
                chunk = await files.read_chunk(session, self.id, JobFileRole.input, seq)
            if chunk is None:
                self.lost = True
                raise JobLost
            yield chunk

    async def input_file(self) -> bytes | None:
        """The file uploaded with the job, whole; None when it has none (or
        it is empty). Prefer :meth:`input_chunks`, which holds one chunk."""
        data = b"".join([chunk async for chunk in self.input_chunks()])
        return data or None

    async def result_writer(
        self, session: AsyncSession, *, media_type: str, filename: str
    ) -> ResultWriter:
        """A writer of this run's result file, in ``session`` (the run's
        transaction), allowed what the owner's stored-files quota leaves
        beside their other jobs' files."""
        settings = self.settings
        used = await files.usage(
            session,
            self.job.owner_id,
            retention=timedelta(hours=settings.result_retention_hours),
            except_job=self.id,
        )
        room = max(0, settings.max_stored_file_bytes_per_user - used.stored)
        return ResultWriter(
            session, self.id, media_type=media_type, filename=filename, max_bytes=room
        )

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
