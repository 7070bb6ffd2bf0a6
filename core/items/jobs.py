"""The items feature's job kinds: CSV import and export.

An import stores its upload in the job row (the API checked the encoding and
header at once); the worker validates the rows in batches, in a thread while
the previous batch is written. All batches and the job's outcome share one
transaction, so a run that dies or is cancelled leaves no partial import
behind, and a retry counts from zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing

from sqlalchemy.ext.asyncio import AsyncSession

from core.items import csvfile, repository
from core.jobs.context import JobContext, JobError, Output, ResultFile
from core.jobs.kinds import JobKind


async def import_items(session: AsyncSession, ctx: JobContext) -> Output:
    """Create or update the owner's items from the uploaded CSV's valid rows;
    report the invalid ones."""
    data = await ctx.input_file()
    if data is None:
        raise JobError("the job has no uploaded file")
    try:
        content = csvfile.decode(data)
        rows = csvfile.reader(content)
        header = csvfile.read_header(rows)
        columns = csvfile.parse_header(header)
    except csvfile.UploadProblem as exc:
        raise JobError(str(exc)) from None

    owner_id, size = ctx.job.owner_id, ctx.settings.import_batch_rows
    expected_lines = max(content.count("\n"), 1)
    # An owner's first large import (the common bulk load) copies without
    # looking for existing skus first.
    fresh = expected_lines >= repository.COPY_MIN_ROWS and not await repository.has_any(
        session, owner_id
    )
    report = csvfile.ImportReport()
    batches = csvfile.batches(rows, columns, len(header), size)
    async with aclosing(_read_ahead(batches)) as ahead:
        async for batch in ahead:
            created, updated = await repository.upsert(
                session, owner_id, batch.records, fresh=fresh
            )
            report.add(batch, created=created, updated=updated)
            if batch.rows == size:  # more may follow
                percent = min(99, 100 * batch.last_line // expected_lines)
                await ctx.progress(percent, report.counts())
    return Output(counts=report.counts(), result=report.result())


async def _read_ahead(batches: Iterator[csvfile.Batch]) -> AsyncGenerator[csvfile.Batch, None]:
    """The batches, each parsed in a thread while the caller writes the
    previous one."""

    def parse_next() -> asyncio.Future[csvfile.Batch | None]:
        return asyncio.ensure_future(asyncio.to_thread(next, batches, None))

    upcoming = parse_next()
    try:
        while (batch := await upcoming) is not None:
            upcoming = parse_next()
            yield batch
    finally:
        upcoming.cancel()


async def export_items(session: AsyncSession, ctx: JobContext) -> Output:
    """The owner's items (all, or those whose name contains ``q``) as CSV,
    sorted by sku."""
    q, owner_id = ctx.job.payload.get("q"), ctx.job.owner_id
    total = await repository.count_matching(session, owner_id, q=q)
    export = csvfile.ExportWriter()
    written = 0
    async for chunk in repository.stream_for_export(session, owner_id, q=q):
        export.write(chunk)
        written += len(chunk)
        await ctx.progress(min(99, 100 * written // max(total, 1)), {"rows": written})
    counts = {"rows": written}
    file = ResultFile(export.content(), csvfile.EXPORT_MEDIA_TYPE, f"items-{ctx.id}.csv")
    return Output(counts=counts, result=counts, result_file=file)


IMPORT = JobKind("items.import", import_items)
EXPORT = JobKind("items.export", export_items)
JOB_KINDS = (IMPORT, EXPORT)
