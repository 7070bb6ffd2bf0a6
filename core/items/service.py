"""Item logic: create, read, update, delete and list one owner's items, and
start their CSV import and export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import anyio
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import save_unique, sqlstate
from core.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    TooManyRequests,
    UnsupportedMediaType,
)
from core.items import csvfile, jobs, listing, repository, uploads
from core.jobs import service as job_service
from core.models import Item, Job
from core.queue import Producer

# What a create refused while an import of the owner's is written waits: an
# import takes seconds.
IMPORT_BUSY_RETRY_AFTER_SECONDS = 5
# How long a create waits for the owner's turn.
LOCK_WAIT_SECONDS = 1.0
DEADLOCK_DETECTED = "40P01"


def _duplicate(sku: str) -> Conflict:
    return Conflict(f"you already have an item with sku {sku!r}")


async def get_for_update(session: AsyncSession, owner_id: UUID, item_id: UUID) -> Item:
    """The owner's item, its row locked until the transaction ends. Another
    user's item is reported exactly like a missing one."""
    item = await repository.get_owned_for_update(session, owner_id, item_id)
    if item is None:
        raise NotFound("item not found")
    return item


async def _take_turn(session: AsyncSession, owner_id: UUID) -> bool:
    """The owner's item lock within LOCK_WAIT_SECONDS: one round trip when
    free (the usual case), else a wait in the server's lock queue, which
    hands it over the moment it is released. (Polling instead cost a round
    trip every few milliseconds per waiting request, and most of the CPU
    of concurrent creations by one owner.)"""
    if await repository.try_lock_owner(session, owner_id):
        return True
    return await repository.wait_lock_owner(session, owner_id, seconds=LOCK_WAIT_SECONDS)


async def create(
    session: AsyncSession, owner_id: UUID, fields: Mapping[str, Any], *, max_items: int
) -> Item:
    """A new item; :class:`Conflict` when the owner already uses the sku,
    :class:`QuotaExceeded` (403: only deleting items frees the quota) when
    they have ``max_items`` already. Race-free: the owner's creations take
    turns (each holds it for milliseconds; an import of theirs holds it as
    it commits, or, written again past the quota, until it ends): after
    LOCK_WAIT_SECONDS, :class:`TooManyRequests` rather than a longer wait,
    which would hold one of the API's pooled connections for as long."""
    if not await _take_turn(session, owner_id):
        raise _import_busy()
    if await repository.count_owned(session, owner_id, up_to=max_items) >= max_items:
        if await repository.sku_taken(session, owner_id, fields["sku"]):
            raise _duplicate(fields["sku"])
        raise QuotaExceeded(
            f"you have {max_items} items, the most allowed (MAX_ITEMS_PER_USER); "
            "delete some to create more"
        )
    try:
        item = await repository.insert_new(session, owner_id, fields)
    except DBAPIError as exc:
        # An import of the owner's, written without the turn, holds this sku
        # uncommitted and now waits for the turn held here: Postgres breaks
        # the cycle, and this side answers as when the turn was busy.
        if sqlstate(exc) != DEADLOCK_DETECTED:
            raise
        raise _import_busy() from None
    if item is None:
        raise _duplicate(fields["sku"])
    return item


def _import_busy() -> TooManyRequests:
    return TooManyRequests(
        "an import of your items is being written; create items again once it has finished",
        retry_after=IMPORT_BUSY_RETRY_AFTER_SECONDS,
    )


async def update(
    session: AsyncSession, owner_id: UUID, item_id: UUID, changes: Mapping[str, Any]
) -> Item:
    """Apply a partial update to the owner's item."""
    item = await get_for_update(session, owner_id, item_id)
    sku = changes.get("sku")
    if sku is not None and await repository.sku_taken(session, owner_id, sku, except_id=item.id):
        raise _duplicate(sku)
    for name, value in changes.items():
        setattr(item, name, value)
    await save_unique(session, item, _duplicate(item.sku))
    return item


async def delete(session: AsyncSession, owner_id: UUID, item_id: UUID) -> None:
    """Delete the owner's item."""
    await session.delete(await get_for_update(session, owner_id, item_id))
    await session.flush()


# A page of the owner's items (with a bounded count), and the orders it can
# be sorted in.
page = listing.page
ItemsPage = listing.ItemsPage
SortKey = listing.SortKey
# The limits of an import's CSV header (import_max_header_bytes, import_max_columns).
HeaderLimits = uploads.HeaderLimits
# The limits of stored job files (max_stored_file_bytes_per_user, result_retention_hours).
FileLimits = job_service.FileLimits


async def start_import(
    session: AsyncSession,
    producer: Producer,
    *,
    owner_id: UUID,
    data: bytes,
    filename: str | None,
    content_type: str | None,
    max_bytes: int,
    header: uploads.HeaderLimits,
    file_limits: FileLimits | None = None,
) -> Job:
    """Queue an import of the CSV file ``data`` (stored as it is: no copy).
    Refused at once: a declared media type that is not CSV's
    (:class:`UnsupportedMediaType`), more than ``max_bytes``
    (:class:`PayloadTooLarge`), a file that is not UTF-8 or whose header is
    wrong or longer than ``header`` allows (:class:`csvfile.UploadProblem`;
    the API answers 422), or past the owner's stored-files quota
    (``file_limits``; :class:`QuotaExceeded`)."""
    _check_media_type(content_type)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file is larger than the limit of {max_bytes} bytes")
    if len(data) > uploads.ON_LOOP_MAX_BYTES:
        await anyio.to_thread.run_sync(uploads.inspect_upload, data, header)
    else:
        uploads.inspect_upload(data, header)
    return await job_service.enqueue(
        session,
        producer,
        owner_id=owner_id,
        kind=jobs.IMPORT,
        # Printable characters only: Postgres's JSONB refuses NUL.
        payload={
            "filename": "".join(filter(str.isprintable, filename or ""))[:200],
            "bytes": len(data),
        },
        input_file=data,
        file_limits=file_limits,
    )


def check_import_head(content_type: str | None, head: bytes, header: uploads.HeaderLimits) -> None:
    """The checks of :func:`start_import` that the first ``header.head_bytes``
    of a file settle (its media type and header), for a caller that can
    refuse an upload before the rest of it arrives."""
    _check_media_type(content_type)
    uploads.check_header(head, header, complete=False)


def _check_media_type(content_type: str | None) -> None:
    if content_type and not csvfile.is_csv_media_type(content_type):
        raise UnsupportedMediaType(f"expected a CSV file (text/csv), got {content_type[:100]!r}")


async def start_export(
    session: AsyncSession,
    producer: Producer,
    *,
    owner_id: UUID,
    q: str | None,
    file_limits: FileLimits | None = None,
) -> Job:
    """Queue an export of the owner's items (those whose name contains ``q``,
    when given) as CSV. :class:`QuotaExceeded` while the owner's stored job
    files are at their quota (``file_limits``)."""
    return await job_service.enqueue(
        session,
        producer,
        owner_id=owner_id,
        kind=jobs.EXPORT,
        payload={"q": q},
        file_limits=file_limits,
    )
