"""CSV import and export of items, run by the worker as jobs.

Import: the API checks the upload's encoding and header at once
(:func:`inspect_upload`) and stores the file in the job row. The worker then
validates the rows in batches with the same limits as the API (in a thread,
while the previous batch is written), inserts the new ones (COPY for large
batches) and updates the owner's existing skus with one statement per batch.
All batches and the job's outcome share one transaction, so a run that dies or
is cancelled leaves no partial import behind, and a retry counts from zero.

Export writes the owner's items with the same header, so that an export
imports back unchanged.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.items import fields, repository
from core.jobs import repository as jobs
from core.jobs.context import JobContext, JobError, Output
from core.models import Item

IMPORT = "items.import"
EXPORT = "items.export"

REQUIRED_COLUMNS = frozenset({"sku", "name", "price", "quantity"})
KNOWN_COLUMNS = frozenset(fields.CSV_COLUMNS)
# The import report keeps this many row errors; the counts cover all of them.
MAX_REPORTED_ERRORS = 1000
# Content types browsers and tools send for a .csv file.
CSV_MEDIA_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/vnd.ms-excel",
        "application/octet-stream",
    }
)

# Fields are bounded by the row validation below, not by the csv module's
# 128 KiB default, which would stop the whole file at one long cell.
csv.field_size_limit(2**31 - 1)


class UploadProblem(ValueError):
    """An upload the API refuses at once."""


def decode(data: bytes) -> str:
    """The file as text: UTF-8, with or without a byte order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadProblem(
            f"file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _reader(content: str) -> Any:  # the csv module's reader type is private
    # newline="" hands line endings (LF or CRLF, or newlines inside quotes)
    # to the csv module, which understands them. strict: a stray quote is an
    # error for that record (reported), and a quote never closed is an error
    # at the end of the file, rather than the rest of the file silently read
    # as one cell.
    return csv.reader(io.StringIO(content, newline=""), strict=True)


def parse_header(row: Sequence[str]) -> dict[str, int]:
    """Column name -> position. Names are matched without surrounding spaces
    and case-insensitively; missing, unknown and repeated names are refused."""
    names = [name.strip().lower() for name in row]
    problems = []
    missing = sorted(REQUIRED_COLUMNS - set(names))
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
    unknown = sorted({n for n in names if n not in KNOWN_COLUMNS}, key=names.index)
    if unknown:
        shown = ", ".join(repr(n) for n in unknown)
        problems.append(f"unknown columns: {shown} (allowed: {', '.join(fields.CSV_COLUMNS)})")
    repeated = sorted({n for n in names if names.count(n) > 1 and n in KNOWN_COLUMNS})
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise UploadProblem("CSV header: " + "; ".join(problems))
    return {name: position for position, name in enumerate(names)}


def inspect_upload(data: bytes) -> None:
    """Refuse at once what cannot be imported: an empty file, a file that is
    not UTF-8, or a header with missing, unknown or repeated columns."""
    if not data.strip():
        raise UploadProblem("file is empty; expected a CSV header and rows")
    content = decode(data)
    if "\x00" in content:
        raise UploadProblem("file contains NUL bytes; it is not a text CSV file")
    parse_header(read_header(_reader(content)))


def read_header(reader: Any) -> list[str]:
    """The first record: the header. :class:`UploadProblem` if there is none
    or it is not well-formed CSV."""
    try:
        header: list[str] | None = next(reader, None)
    except csv.Error as exc:
        raise UploadProblem(f"CSV header on line 1 is malformed ({exc})") from None
    if not header:
        raise UploadProblem("file has no CSV header on its first line")
    return header


@dataclass
class _Report:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, column: str | None, reason: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "column": column, "reason": reason})

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


class _Invalid(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def _text(value: str, column: str, *, max_length: int, required: bool) -> str | None:
    if not value:
        if required:
            raise _Invalid(column, "is required")
        return None
    if len(value) > max_length:
        raise _Invalid(column, f"is longer than {max_length} characters")
    if "\x00" in value:
        raise _Invalid(column, "must not contain NUL characters")
    return value


def _sku(value: str) -> str:
    if not value:
        raise _Invalid("sku", "is required")
    if len(value) > fields.SKU_MAX_LENGTH:
        raise _Invalid("sku", f"is longer than {fields.SKU_MAX_LENGTH} characters")
    if not fields.SKU_RE.fullmatch(value):  # match() would take "A1\n"
        raise _Invalid("sku", "may only contain letters, digits, '.', '_' and '-'")
    return value


_CENT = Decimal("0.01")


def _price(value: str) -> Decimal:
    try:
        price = Decimal(value.strip())
    except InvalidOperation:
        raise _Invalid("price", f"{value[:40]!r} is not a number") from None
    if not price.is_finite():
        raise _Invalid("price", "must be a finite number")
    if price < 0:
        raise _Invalid("price", "must be at least 0")
    if price > fields.PRICE_MAX:
        raise _Invalid("price", f"must be at most {fields.PRICE_MAX}")
    if price != price.quantize(_CENT):
        raise _Invalid("price", f"has more than {fields.PRICE_DECIMAL_PLACES} decimal places")
    return price


def _quantity(value: str) -> int:
    stripped = value.strip()
    digits = stripped.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise _Invalid("quantity", f"{value[:40]!r} is not a whole number")
    if stripped.startswith("-"):
        raise _Invalid("quantity", "must be at least 0")
    # int() refuses more than 4,300 digits; anything past 10 is too large.
    significant = digits.lstrip("0")
    if len(significant) > len(str(fields.QUANTITY_MAX)):
        raise _Invalid("quantity", f"must be at most {fields.QUANTITY_MAX}")
    quantity = int(digits)
    if quantity > fields.QUANTITY_MAX:
        raise _Invalid("quantity", f"must be at most {fields.QUANTITY_MAX}")
    return quantity


# What COPY writes into items, in ITEM_COLUMNS order.
_Record = tuple[UUID, str, str, str | None, Decimal, int]
ITEM_COLUMNS = ("owner_id", "sku", "name", "description", "price", "quantity")


@dataclass
class _Parsed:
    """One batch of the file: its valid rows and its rejected ones."""

    records: list[_Record]
    rejected: list[tuple[int, str | None, str]]
    rows: int
    last_line: int


def _parse(
    reader: Any, columns: dict[str, int], width: int, owner_id: UUID, batch_rows: int
) -> Iterator[_Parsed]:
    """Validate the rows after the header (``reader`` has read it),
    ``batch_rows`` at a time. Runs in a thread, so that the next batch is
    parsed while the previous one is written."""
    sku_at, name_at = columns["sku"], columns["name"]
    price_at, quantity_at = columns["price"], columns["quantity"]
    description_at = columns.get("description")
    seen: dict[str, int] = {}
    batch = _Parsed([], [], 0, 0)
    line = reader.line_num + 1  # where the next record starts
    while True:
        problem: str | None = None
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            # Reported as one skipped row; reading goes on after it.
            cells, problem = [], str(exc)
            if problem == "unexpected end of data":
                problem = "a quoted field is never closed"
        if cells is None:
            break
        row_line, line = line, reader.line_num + 1
        if not cells and problem is None:
            continue  # a blank line
        batch.rows += 1
        batch.last_line = row_line
        if problem is not None:
            last = reader.line_num
            span = f"; lines {row_line}-{last} were read as this record" if last > row_line else ""
            batch.rejected.append((row_line, None, f"malformed CSV ({problem}){span}"))
        elif len(cells) != width:
            reason = f"has {len(cells)} fields; the header has {width}"
            batch.rejected.append((row_line, None, reason))
        else:
            try:
                sku = _sku(cells[sku_at])
                name = _text(
                    cells[name_at], "name", max_length=fields.NAME_MAX_LENGTH, required=True
                )
                description = (
                    None
                    if description_at is None
                    else _text(
                        cells[description_at],
                        "description",
                        max_length=fields.DESCRIPTION_MAX_LENGTH,
                        required=False,
                    )
                )
                price = _price(cells[price_at])
                quantity = _quantity(cells[quantity_at])
            except _Invalid as exc:
                batch.rejected.append((row_line, exc.column, exc.reason))
            else:
                first = seen.setdefault(sku, row_line)
                if first != row_line:
                    batch.rejected.append((row_line, "sku", f"repeats the sku of line {first}"))
                else:
                    assert name is not None
                    batch.records.append((owner_id, sku, name, description, price, quantity))
        if batch.rows == batch_rows:
            yield batch
            batch = _Parsed([], [], 0, row_line)
    yield batch


_EXISTING = text("SELECT sku FROM items WHERE owner_id = :owner_id AND sku = ANY(:skus)")

# Rows whose values did not change are left alone (no write, no updated_at
# bump) and counted as unchanged. An empty description and no description are
# the same thing in a CSV cell.
_UPDATE = text(
    """
    WITH changed AS (
        UPDATE items
        SET name = r.name, description = r.description, price = r.price,
            quantity = r.quantity, updated_at = now()
        FROM unnest(
            CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
            CAST(:prices AS numeric[]), CAST(:quantities AS integer[])
        ) AS r(sku, name, description, price, quantity)
        WHERE items.owner_id = :owner_id AND items.sku = r.sku
          AND (items.name, coalesce(items.description, ''), items.price, items.quantity)
              IS DISTINCT FROM (r.name, coalesce(r.description, ''), r.price, r.quantity)
        RETURNING 1
    )
    SELECT count(*) FROM changed
    """
)


async def _existing(session: AsyncSession, owner_id: UUID, records: list[_Record]) -> set[str]:
    skus = [record[1] for record in records]
    rows = await session.scalars(_EXISTING, {"owner_id": owner_id, "skus": skus})
    return set(rows.all())


# Below this many rows one INSERT over arrays beats COPY, which costs extra
# round trips to set up.
_COPY_MIN_ROWS = 500

# Small batches: insert what is new in one statement; the skus it returns
# were created, the others exist and go to the update.
_INSERT_NEW = text(
    """
    INSERT INTO items (owner_id, sku, name, description, price, quantity)
    SELECT :owner_id, * FROM unnest(
        CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
        CAST(:prices AS numeric[]), CAST(:quantities AS integer[])
    )
    ON CONFLICT (owner_id, sku) DO NOTHING
    RETURNING sku
    """
)


def _arrays(records: list[_Record]) -> dict[str, Any]:
    owner_ids, skus, names, descriptions, prices, quantities = zip(*records, strict=True)
    return {
        "owner_id": owner_ids[0],
        "skus": list(skus),
        "names": list(names),
        "descriptions": list(descriptions),
        "prices": list(prices),
        "quantities": list(quantities),
    }


async def _copy(session: AsyncSession, records: list[_Record]) -> bool:
    """COPY new rows into items inside a savepoint. False, and nothing
    written, when one of the skus exists already."""
    try:
        async with session.begin_nested():
            connection = await (await session.connection()).get_raw_connection()
            driver = connection.driver_connection
            assert driver is not None
            await driver.copy_records_to_table("items", records=records, columns=ITEM_COLUMNS)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _write(
    session: AsyncSession, owner_id: UUID, records: list[_Record], *, fresh: bool
) -> tuple[int, int]:
    """Store one batch; returns (created, updated). New rows go in with COPY,
    the fastest path Postgres has; rows the owner already has are updated with
    one statement over arrays. For an owner who had no items (``fresh``) the
    batch is copied without looking first."""
    if not records:
        return 0, 0
    if len(records) < _COPY_MIN_ROWS:
        created = set((await session.scalars(_INSERT_NEW, _arrays(records))).all())
        changes = [record for record in records if record[1] not in created]
        return len(created), await _update(session, owner_id, changes)
    if fresh and await _copy(session, records):
        return len(records), 0
    while True:
        existing = await _existing(session, owner_id, records)
        new = [record for record in records if record[1] not in existing]
        # A failed copy means the owner created one of these skus (through
        # the API) since the check: look again.
        if not new or await _copy(session, new):
            break
    changes = [record for record in records if record[1] in existing]
    return len(new), await _update(session, owner_id, changes)


async def _update(session: AsyncSession, owner_id: UUID, records: list[_Record]) -> int:
    if not records:
        return 0
    return await session.scalar(_UPDATE, _arrays(records)) or 0


async def import_items(session: AsyncSession, ctx: JobContext) -> Output:
    """Create or update the owner's items from the uploaded CSV's valid rows;
    report the invalid ones."""
    data = await jobs.input_file(session, ctx.id)
    if data is None:
        raise JobError("the job has no uploaded file")
    try:
        content = decode(data)
        reader = _reader(content)
        header = read_header(reader)
        columns = parse_header(header)
    except UploadProblem as exc:
        raise JobError(str(exc)) from None

    expected_lines = max(content.count("\n"), 1)
    batches = _parse(reader, columns, len(header), ctx.job.owner_id, ctx.settings.import_batch_rows)
    report = _Report()

    def step() -> _Parsed | None:
        return next(batches, None)

    def parse_next() -> asyncio.Future[_Parsed | None]:
        return asyncio.ensure_future(asyncio.to_thread(step))

    # An owner's first large import (the common bulk load) copies without
    # looking for existing skus first.
    fresh = expected_lines >= _COPY_MIN_ROWS and not await session.scalar(
        select(exists().where(Item.owner_id == ctx.job.owner_id))
    )
    upcoming = parse_next()
    try:
        while (batch := await upcoming) is not None:
            upcoming = parse_next()  # parse the next batch while this one is written
            report.rows += batch.rows
            for line, column, reason in batch.rejected:
                report.reject(line, column, reason)
            created, updated = await _write(session, ctx.job.owner_id, batch.records, fresh=fresh)
            report.created += created
            report.updated += updated
            report.unchanged += len(batch.records) - created - updated
            if batch.rows == ctx.settings.import_batch_rows:  # more may follow
                percent = min(99, 100 * batch.last_line // expected_lines)
                await ctx.progress(percent, report.counts())
    finally:
        upcoming.cancel()
    counts = report.counts()
    return Output(
        counts=counts,
        result={
            **counts,
            "errors": report.errors,
            "errors_truncated": report.skipped > len(report.errors),
        },
    )


async def export_items(session: AsyncSession, ctx: JobContext) -> Output:
    """The owner's items (all, or those matching ``q``) as CSV, sorted by sku."""
    q = ctx.job.payload.get("q")
    total = await repository.count_matching(session, ctx.job.owner_id, q=q)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(fields.CSV_COLUMNS)
    written = 0
    async for chunk in repository.stream_for_export(session, ctx.job.owner_id, q=q):
        writer.writerows(
            (sku, name, description or "", price, quantity)
            for sku, name, description, price, quantity in chunk
        )
        written += len(chunk)
        await ctx.progress(min(99, 100 * written // max(total, 1)), {"rows": written})
    counts = {"rows": written}
    return Output(counts=counts, result=counts, result_file=buffer.getvalue().encode("utf-8"))
