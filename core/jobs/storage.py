"""Stored job files as their owners meet them: the per-user quota, a result
file read back one chunk at a time, and the retention purge the scheduler
runs (see README, Jobs: files). The SQL is in :mod:`core.jobs.files`."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.errors import Gone, QuotaExceeded
from core.jobs import files, repository
from core.models import Job, JobFileRole
from core.settings import JobSettings

log = logging.getLogger(__name__)

# Retry-After when uploads of jobs still queued or running hold the space:
# they go when their jobs end, which for most is a matter of seconds.
INPUT_WAIT_SECONDS = 60
# Result files deleted per transaction of the purge.
PURGE_BATCH = 100


@dataclass(frozen=True)
class FileLimits:
    """MAX_STORED_FILE_BYTES_PER_USER and RESULT_RETENTION_HOURS."""

    max_bytes_per_user: int
    retention_hours: int

    @classmethod
    def of(cls, settings: JobSettings) -> FileLimits:
        """The limits ``settings`` set."""
        return cls(settings.max_stored_file_bytes_per_user, settings.result_retention_hours)

    @property
    def retention(self) -> timedelta:
        """How long a result file is kept after its job finished."""
        return timedelta(hours=self.retention_hours)


def refuse_past_quota(used: files.Usage, limits: FileLimits, incoming: int | None) -> None:
    """Refuse (:class:`QuotaExceeded`) an upload of ``incoming`` bytes that
    would take the owner's stored job files (``used``) past the limit, or,
    with ``incoming`` None (an export, whose size is known only once
    written), a job of an owner already at the limit. The caller counted
    ``used`` under the owner's lock (:func:`core.jobs.repository.lock_owner`)
    for the race-free check, without it for a cheap early one."""
    limit = limits.max_bytes_per_user
    if incoming is None:
        if used.stored < limit:
            return
        what = f"your stored job files have reached the limit of {limit} bytes"
    else:
        if used.stored + incoming <= limit:
            return
        what = f"this upload ({incoming} bytes) would take your stored job files past {limit} bytes"
        if incoming > limit:
            raise QuotaExceeded(
                f"{what} (MAX_STORED_FILE_BYTES_PER_USER), more than any user may store"
            )
    retry_after = _retry_after(used)
    raise QuotaExceeded(
        f"{what} (MAX_STORED_FILE_BYTES_PER_USER; {used.stored} in use). Uploads are "
        f"deleted when their jobs end, results {limits.retention_hours} hours after "
        f"their job finished (RESULT_RETENTION_HOURS); retry in {retry_after} s",
        retry_after=retry_after,
    )


async def fits_result(
    session: AsyncSession, owner_id: UUID, job_id: UUID, size: int, limits: FileLimits
) -> bool:
    """Whether a result of ``size`` bytes fits beside the owner's other files,
    under the owner's lock until the run's transaction commits: results of
    exports that ran at once are checked one by one, each writer having been
    allowed only what was free when it started."""
    await repository.lock_owner(session, owner_id)
    used = await files.usage(session, owner_id, retention=limits.retention, except_job=job_id)
    return used.stored + size <= limits.max_bytes_per_user


def _retry_after(used: files.Usage) -> int:
    """Seconds until some of the owner's files are gone: an upload when its
    job ends (soon, as a rule), else the oldest result when it expires."""
    waits = [INPUT_WAIT_SECONDS] if used.inputs_held else []
    if used.next_expiry_seconds is not None:
        waits.append(math.ceil(used.next_expiry_seconds))
    return max(1, min(waits, default=INPUT_WAIT_SECONDS))


@dataclass(frozen=True)
class StoredFile:
    """A job's result file as stored: where, how large, how it is served.
    ``legacy``: in ``jobs.result_file``, where the release before chunks
    put it (a run it finished during a rolling update)."""

    job_id: UUID
    size: int
    media_type: str
    filename: str
    legacy: bool = False


async def result_file(
    session: AsyncSession, job: Job, *, retention_hours: int
) -> StoredFile | None:
    """The succeeded ``job``'s result file; None when it produced none.
    :class:`Gone` once ``retention_hours`` (RESULT_RETENTION_HOURS) have
    passed since it finished, whether or not the purge has deleted it yet."""
    if job.result_media_type is None:
        return None
    finished = job.finished_at or job.updated_at
    expired = finished + timedelta(hours=retention_hours) <= datetime.now(UTC)
    if job.result_purged_at is not None or expired:
        raise Gone(
            f"this job's result expired {retention_hours} hours after the job "
            "finished (RESULT_RETENTION_HOURS) and was deleted; run the job again"
        )
    filename = job.result_filename or f"{job.kind}-{job.id}"
    stored = StoredFile(job.id, job.result_bytes, job.result_media_type, filename)
    if job.result_bytes == 0:
        legacy = await files.legacy_result_size(session, job.id)
        if legacy is not None:
            return StoredFile(job.id, legacy, job.result_media_type, filename, legacy=True)
    return stored


async def read(
    sessionmaker: async_sessionmaker[AsyncSession], file: StoredFile
) -> AsyncIterator[bytes]:
    """The file's bytes, one chunk per short session of its own: a slow
    reader holds no connection between chunks. A file deleted meanwhile (the
    purge of a result whose download began just before it expired) ends
    short, which its reader sees against the size it was told."""
    if file.legacy:
        async with sessionmaker() as session:
            data = await files.legacy_result(session, file.job_id) or b""
        for offset in range(0, len(data), files.CHUNK_BYTES):
            yield data[offset : offset + files.CHUNK_BYTES]
        return
    for seq in range(files.chunk_count(file.size)):
        async with sessionmaker() as session:
            chunk = await files.read_chunk(session, file.job_id, JobFileRole.result, seq)
        if chunk is None:
            log.warning("job %s: its result file was deleted while being read", file.job_id)
            return
        yield chunk


async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession], limits: FileLimits) -> int:
    """Delete every result file kept past RESULT_RETENTION_HOURS, a batch
    per transaction; the jobs stay, marked purged. Returns how many."""
    total = 0
    while True:
        async with sessionmaker() as session, transaction(session):
            purged = await files.purge_expired_results(
                session, retention=limits.retention, limit=PURGE_BATCH
            )
        total += len(purged)
        if len(purged) < PURGE_BATCH:
            break
    if total:
        log.info("purged %d expired result files", total)
    return total
