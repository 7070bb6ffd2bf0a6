"""The items feature's job kinds: CSV import and export.

An import's upload is stored with its job (the API checked the encoding and
header at once); the worker reads it a chunk at a time and validates its
rows in batches, in a thread while the previous batch is written
(:mod:`core.items.feed`). All batches and the job's outcome share one
transaction, so a run that dies or is cancelled leaves no partial import
behind, and a retry counts from zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from core.items import csvfile, repository
from core.items.feed import read_ahead
from core.jobs.context import JobContext, JobError, Output
from core.jobs.kinds import JobKind


async def import_items(session: AsyncSession, ctx: JobContext) -> Output:
    """Create or update the owner's items from the uploaded CSV's valid rows
    (new ones up to MAX_ITEMS_PER_USER); report the others. The file is read
    a chunk at a time and parsed in a thread, so the run's memory does not
    grow with it."""
    owner_id, settings = ctx.job.owner_id, ctx.settings
    max_items, total = settings.max_items_per_user, ctx.job.input_bytes
    report = csvfile.ImportReport(max_items=max_items)
    stored: int | None = None  # the owner's items, once counted
    fresh = False
    parse = partial(_parse, size=settings.import_batch_rows)
    try:
        async with aclosing(read_ahead(ctx.input_chunks(), parse)) as ahead:
            async for batch in ahead:
                if stored is None:
                    # Held until the import's transaction ends: the owner's
                    # other creations wait, and count what it stored.
                    await repository.lock_owner(session, owner_id)
                    stored = await repository.count_owned(session, owner_id, up_to=max_items)
                    # An owner's first import (the common bulk load) copies
                    # without looking for existing skus first.
                    fresh = stored == 0
                created, updated, over = await repository.upsert_within(
                    session, owner_id, batch.records, fresh=fresh, room=max_items - stored
                )
                stored += created
                report.add(batch, created=created, updated=updated, over_quota=over)
                if not batch.final:
                    percent = min(99, 100 * batch.bytes_read // total) if total else 0
                    await ctx.progress(percent, report.counts())
    except csvfile.UploadProblem as exc:
        if isinstance(exc, _NoFile):
            # A file deleted meanwhile: the job was cancelled (JobLost here).
            await ctx.progress(0)
        raise JobError(str(exc)) from None
    return Output(counts=report.counts(), result=report.result())


class _NoFile(csvfile.UploadProblem):
    """The job has no file to read."""


def _parse(chunks: Iterator[bytes], *, size: int) -> Iterator[csvfile.Batch]:
    """The file's header checked, then its rows in batches of ``size``."""
    rows = csvfile.records(chunks)
    try:
        header = csvfile.read_header(rows)
    except csvfile.UploadProblem:
        if rows.bytes_read == 0:
            raise _NoFile("the job has no uploaded file") from None
        raise
    columns = csvfile.parse_header(header)
    yield from csvfile.batches(rows, columns, len(header), size)


async def export_items(session: AsyncSession, ctx: JobContext) -> Output:
    """The owner's items (all, or those whose name contains ``q``) as CSV,
    sorted by sku: read through a server-side cursor a batch at a time, and
    each batch's CSV stored as it is made, so the run holds one batch."""
    q, owner_id = ctx.job.payload.get("q"), ctx.job.owner_id
    total = await repository.count_matching(session, owner_id, q=q)
    file = await ctx.result_writer(
        session, media_type=csvfile.EXPORT_MEDIA_TYPE, filename=f"items-{ctx.id}.csv"
    )
    export = csvfile.ExportWriter()
    await file.write(export.take())  # the header
    written = 0
    async for chunk in repository.stream_for_export(session, owner_id, q=q):
        export.write(chunk)
        await file.write(export.take())
        written += len(chunk)
        await ctx.progress(min(99, 100 * written // max(total, 1)), {"rows": written})
    counts = {"rows": written}
    return Output(counts=counts, result=counts, result_file=await file.close())


IMPORT = JobKind("items.import", import_items)
EXPORT = JobKind("items.export", export_items, makes_file=True)
JOB_KINDS = (IMPORT, EXPORT)
