"""The items feature's job kinds: CSV import and export.

An import's upload is stored with its job (the API checked the encoding and
header at once); the worker reads it a chunk at a time and validates its
rows in batches, in a thread while the previous batch is written
(:mod:`core.items.feed`). All batches and the job's outcome share one
transaction, so a run that dies or is cancelled leaves no partial import
behind, and a retry counts from zero.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from core.items import csvfile, repository
from core.items.feed import read_ahead
from core.items.report import ImportReport
from core.items.repository import COPY_MIN_ROWS
from core.items.uploads import ON_LOOP_MAX_BYTES
from core.jobs.context import JobContext, JobError, Output, RunAgain
from core.jobs.kinds import JobKind


async def import_items(session: AsyncSession, ctx: JobContext) -> Output:
    """Create or update the owner's items from the uploaded CSV's valid rows
    (new ones up to MAX_ITEMS_PER_USER); report the others. The file is read
    a chunk at a time and parsed in a thread, so the run's memory does not
    grow with it.

    One owner's imports run side by side: an import is written without the
    owner's item lock, which :func:`settle_import` takes only once the
    outcome is recorded, to count the owner's items with its own (held for
    that count and the commit). Within MAX_ITEMS_PER_USER it is kept. Past
    it (other creations meanwhile took the room), or when a batch alone may
    pass it, the run is rolled back and written again (``ctx.again``) under
    the lock, new items up to the room left, as the owner's creations take
    turns."""
    if ctx.again:
        await repository.lock_owner(session, ctx.job.owner_id)
    report = await _write(session, ctx, bounded=ctx.again)
    return Output(counts=report.counts(), result=report.result())


async def settle_import(session: AsyncSession, ctx: JobContext, output: Output) -> None:
    """:class:`RunAgain` unless the owner's items, this import's among them,
    are within MAX_ITEMS_PER_USER; the owner's lock is held from here to the
    commit."""
    if ctx.again or not (output.counts or {}).get("created"):
        return
    owner_id, max_items = ctx.job.owner_id, ctx.settings.max_items_per_user
    await repository.lock_owner(session, owner_id)
    if await repository.count_owned(session, owner_id, up_to=max_items + 1) > max_items:
        raise RunAgain


async def _write(session: AsyncSession, ctx: JobContext, *, bounded: bool) -> ImportReport:
    """Read, check and write the whole file. ``bounded`` (the caller holds
    the owner's lock): new items up to MAX_ITEMS_PER_USER. Else unbounded,
    but :class:`RunAgain` when a large batch could pass it with the items
    the owner had."""
    owner_id, settings = ctx.job.owner_id, ctx.settings
    max_items, total = settings.max_items_per_user, ctx.job.input_bytes
    report = csvfile.ImportReport(max_items=max_items)
    stored: int | None = None  # the owner's items before, once counted
    parse = partial(_parse, size=settings.import_batch_rows)
    try:
        async with aclosing(_batches(ctx, parse)) as batches:
            async for batch in batches:
                records = batch.records
                if stored is None and (bounded or len(records) >= COPY_MIN_ROWS):
                    # An owner's first import (the common bulk load) copies
                    # without looking for existing skus first.
                    stored = await repository.count_owned(session, owner_id, up_to=max_items)
                room = max_items - (stored or 0) - report.created
                if not bounded and stored is not None and len(records) > room:
                    raise RunAgain  # this batch may pass the quota: write it held
                created, updated, over = await repository.upsert_within(
                    session,
                    owner_id,
                    records,
                    fresh=stored == 0,
                    room=room if bounded else len(records),
                )
                report.add(batch, created=created, updated=updated, over_quota=over)
                if not batch.final:
                    percent = min(99, 100 * batch.bytes_read // total) if total else 0
                    await ctx.progress(percent, report.counts())
    except csvfile.UploadProblem as exc:
        if isinstance(exc, _NoFile):
            # A file deleted meanwhile: the job was cancelled (JobLost here).
            await ctx.progress(0)
        raise JobError(str(exc)) from None
    return report


async def _batches(
    ctx: JobContext, parse: Callable[[Iterator[bytes]], Iterator[csvfile.Batch]]
) -> AsyncGenerator[csvfile.Batch, None]:
    """The file's batches: parsed in a thread while the previous one is
    written, or, for a small file, here."""
    if ctx.job.input_bytes > ON_LOOP_MAX_BYTES:
        async with aclosing(read_ahead(ctx.input_chunks(), parse)) as ahead:
            async for batch in ahead:
                yield batch
        return
    chunks = [chunk async for chunk in ctx.input_chunks()]
    for batch in parse(iter(chunks)):
        yield batch


class _NoFile(csvfile.UploadProblem):
    """The job has no file to read."""


# The first batch is small: the database has nothing to write until it is
# parsed, and later batches are parsed while the one before is written.
FIRST_BATCH_ROWS = 2_000


def _parse(chunks: Iterator[bytes], *, size: int) -> Iterator[csvfile.Batch]:
    """The file's header checked, then its rows in batches of ``size``, the
    first of FIRST_BATCH_ROWS at most."""
    rows = csvfile.records(chunks)
    try:
        header = csvfile.read_header(rows)
    except csvfile.UploadProblem:
        if rows.bytes_read == 0:
            raise _NoFile("the job has no uploaded file") from None
        raise
    columns = csvfile.parse_header(header)
    yield from csvfile.batches(rows, columns, len(header), size, first=FIRST_BATCH_ROWS)


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


IMPORT = JobKind("items.import", import_items, settle=settle_import)
EXPORT = JobKind("items.export", export_items, makes_file=True)
JOB_KINDS = (IMPORT, EXPORT)
