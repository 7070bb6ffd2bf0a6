"""CSV import and export of items, run by the worker as jobs.

Import: the API checks the upload's encoding and header at once
(:func:`inspect_upload`) and stores the file in the job row. The worker then
reads it in batches, validates each row with the same limits as the API, and
upserts each batch by ``(owner, sku)`` with one statement over arrays. All
batches and the job's outcome share one transaction, so a run that dies or is
cancelled leaves no partial import behind, and a retry counts from zero.

Export writes the owner's items with the same header, so that an export
imports back unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.items import fields, repository
from core.jobs import repository as jobs
from core.jobs.context import JobContext, JobError, Output

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
    # to the csv module, which understands them.
    return csv.reader(io.StringIO(content, newline=""))


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
    header = next(_reader(content), None)
    if not header:
        raise UploadProblem("file has no CSV header on its first line")
    parse_header(header)


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
    if not fields.SKU_RE.match(value):
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
    quantity = int(digits)
    if quantity > fields.QUANTITY_MAX:
        raise _Invalid("quantity", f"must be at most {fields.QUANTITY_MAX}")
    return quantity


_Row = tuple[str, str, str | None, Decimal, int]


class _Batch:
    """Valid rows of one batch, column by column (the statement takes arrays)."""

    def __init__(self) -> None:
        self.skus: list[str] = []
        self.names: list[str] = []
        self.descriptions: list[str | None] = []
        self.prices: list[Decimal] = []
        self.quantities: list[int] = []

    def add(self, row: _Row) -> None:
        sku, name, description, price, quantity = row
        self.skus.append(sku)
        self.names.append(name)
        self.descriptions.append(description)
        self.prices.append(price)
        self.quantities.append(quantity)

    def __len__(self) -> int:
        return len(self.skus)


# One round trip per batch. Rows whose values did not change are left alone
# (no write, no updated_at bump) and counted as unchanged. An empty description
# and no description are the same thing in a CSV cell.
_UPSERT = text(
    """
    WITH incoming AS (
        SELECT *
        FROM unnest(
            CAST(:skus AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
            CAST(:prices AS numeric[]), CAST(:quantities AS integer[])
        ) AS r(sku, name, description, price, quantity)
    ), written AS (
        INSERT INTO items (id, owner_id, sku, name, description, price, quantity)
        SELECT gen_random_uuid(), :owner_id, sku, name, description, price, quantity
        FROM incoming
        ON CONFLICT (owner_id, sku) DO UPDATE
        SET name = excluded.name,
            description = excluded.description,
            price = excluded.price,
            quantity = excluded.quantity,
            updated_at = now()
        WHERE (items.name, coalesce(items.description, ''), items.price, items.quantity)
              IS DISTINCT FROM
              (excluded.name, coalesce(excluded.description, ''), excluded.price, excluded.quantity)
        RETURNING xmax = 0 AS created
    )
    SELECT count(*) FILTER (WHERE created) AS created,
           count(*) FILTER (WHERE NOT created) AS updated
    FROM written
    """
)


async def _write(session: AsyncSession, ctx: JobContext, batch: _Batch, report: _Report) -> None:
    if not batch:
        return
    row = (
        await session.execute(
            _UPSERT,
            {
                "skus": batch.skus,
                "names": batch.names,
                "descriptions": batch.descriptions,
                "prices": batch.prices,
                "quantities": batch.quantities,
                "owner_id": ctx.job.owner_id,
            },
        )
    ).one()
    report.created += row.created
    report.updated += row.updated
    report.unchanged += len(batch) - row.created - row.updated


async def import_items(session: AsyncSession, ctx: JobContext) -> Output:
    """Upsert the uploaded CSV's valid rows; report the invalid ones."""
    data = await jobs.input_file(session, ctx.id)
    if data is None:
        raise JobError("the job has no uploaded file")
    try:
        content = decode(data)
    except UploadProblem as exc:
        raise JobError(str(exc)) from None
    reader = _reader(content)
    try:
        header = next(iter(reader), None)
        columns = parse_header(header or [])
    except UploadProblem as exc:
        raise JobError(str(exc)) from None

    batch_rows = ctx.settings.import_batch_rows
    expected_rows = max(content.count("\n"), 1)
    report = _Report()
    batch = _Batch()
    seen: dict[str, int] = {}
    width = len(header or [])
    sku_at, name_at, price_at, quantity_at = (
        columns["sku"],
        columns["name"],
        columns["price"],
        columns["quantity"],
    )
    description_at = columns.get("description")
    line = reader.line_num + 1  # where the next record starts
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            report.rows += 1
            report.reject(line, None, f"malformed CSV ({exc}); the rest of the file was not read")
            break
        if cells is None:
            break
        row_line, line = line, reader.line_num + 1
        if not cells:
            continue  # a blank line
        report.rows += 1
        if len(cells) != width:
            report.reject(row_line, None, f"has {len(cells)} fields; the header has {width}")
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
                report.reject(row_line, exc.column, exc.reason)
            else:
                first = seen.setdefault(sku, row_line)
                if first != row_line:
                    report.reject(row_line, "sku", f"repeats the sku of line {first}")
                else:
                    assert name is not None
                    batch.add((sku, name, description, price, quantity))
        if report.rows % batch_rows == 0:
            await _write(session, ctx, batch, report)
            batch = _Batch()
            await ctx.progress(min(99, 100 * row_line // expected_rows), report.counts())
    await _write(session, ctx, batch, report)
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
