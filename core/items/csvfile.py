"""The item CSV format: reading and checking uploads, validating rows with the
item rules of :mod:`core.items.fields`, and writing exports. No database, no
jobs: :mod:`core.items.jobs` runs these, :mod:`core.items.repository` stores
what they return.

An upload is checked at once (:mod:`core.items.uploads`: encoding, header); its
rows are validated later, in batches (:func:`batches`), each row reported
with its line, column and reason when it is refused.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from core.items.rows import CSV_COLUMNS, Cells, Record, validate_rows
from core.items.spreadsheet import export_row, import_row

REQUIRED_COLUMNS = frozenset({"sku", "name", "price", "quantity"})
KNOWN_COLUMNS = frozenset(CSV_COLUMNS)
# A refused header names this many of its unknown columns (the first ones),
# each cut to _NAME_SHOWN characters.
MAX_NAMED_COLUMNS = 10
_NAME_SHOWN = 40
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
# What an export is served as.
EXPORT_MEDIA_TYPE = "text/csv; charset=utf-8"

# Fields are bounded by the row validation below, not by the csv module's
# 128 KiB default, which would stop the whole file at one long cell.
csv.field_size_limit(2**31 - 1)

# A refused row: its line, the column at fault (None: the whole record), why.
Rejection = tuple[int, str | None, str]
Reader = Any  # the csv module's reader type is private


class UploadProblem(ValueError):
    """An upload the API refuses at once."""


def is_csv_media_type(content_type: str) -> bool:
    """Whether an upload's Content-Type may be a CSV file."""
    return content_type.split(";")[0].strip().lower() in CSV_MEDIA_TYPES


def decode(data: bytes) -> str:
    """The file as text: UTF-8, with or without a byte order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadProblem(
            f"file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def reader(content: str) -> Reader:
    """A reader of ``content``'s records."""
    # newline="" hands line endings (LF or CRLF, or newlines inside quotes)
    # to the csv module, which understands them. strict: a stray quote is an
    # error for that record (reported), and a quote never closed is an error
    # at the end of the file, rather than the rest of the file silently read
    # as one cell.
    return csv.reader(io.StringIO(content, newline=""), strict=True)


def read_header(rows: Reader) -> list[str]:
    """The first record: the header. :class:`UploadProblem` if there is none
    or it is not well-formed CSV."""
    try:
        header: list[str] | None = next(rows, None)
    except csv.Error as exc:
        raise UploadProblem(f"CSV header on line 1 is malformed ({exc})") from None
    if not header:
        raise UploadProblem("file has no CSV header on its first line")
    return header


def parse_header(row: Sequence[str]) -> dict[str, int]:
    """Column name -> position. Names are matched without surrounding spaces
    and case-insensitively; missing, unknown and repeated names are refused.
    Linear in the header's length, however many columns it has."""
    names = [name.strip().lower() for name in row]
    problems = []
    missing = sorted(REQUIRED_COLUMNS - set(names))
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
    # In the order they first appear.
    unknown = dict.fromkeys(n for n in names if n not in KNOWN_COLUMNS)
    if unknown:
        # The first few, shortened: the message stays short however long the header.
        shown = ", ".join(repr(_shorten(n)) for n in islice(unknown, MAX_NAMED_COLUMNS))
        if len(unknown) > MAX_NAMED_COLUMNS:
            shown += f" and {len(unknown) - MAX_NAMED_COLUMNS} more"
        problems.append(f"unknown columns: {shown} (allowed: {', '.join(CSV_COLUMNS)})")
    repeated = sorted(n for n, count in Counter(names).items() if count > 1 and n in KNOWN_COLUMNS)
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise UploadProblem("CSV header: " + "; ".join(problems))
    return {name: position for position, name in enumerate(names)}


def _shorten(name: str) -> str:
    return name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "..."


@dataclass
class Batch:
    """Consecutive rows of a file: the valid ones (``records``, on ``lines``)
    and the refused ones; how many rows, and the line of the last."""

    last_line: int
    rows: int = 0
    records: list[Record] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def batches(rows: Reader, columns: dict[str, int], width: int, size: int) -> Iterator[Batch]:
    """Validate the records after the header (``rows`` has read it), ``size``
    at a time. A blank line is no row; a repeated sku is refused, naming the
    line that first had it."""
    sku_at, name_at = columns["sku"], columns["name"]
    price_at, quantity_at = columns["price"], columns["quantity"]
    description_at = columns.get("description")
    seen: dict[str, int] = {}
    batch, pending = Batch(0), _Pending()
    line = rows.line_num + 1  # where the next record starts
    while True:
        problem: str | None = None
        try:
            cells = next(rows, None)
        except csv.Error as exc:
            # Reported as one refused row; reading goes on after it.
            cells, problem = [], str(exc)
            if problem == "unexpected end of data":
                problem = "a quoted field is never closed"
        if cells is None:
            break
        row_line, line = line, rows.line_num + 1
        if not cells and problem is None:
            continue  # a blank line
        batch.rows += 1
        batch.last_line = row_line
        if problem is not None:
            last = rows.line_num
            span = f"; lines {row_line}-{last} were read as this record" if last > row_line else ""
            batch.rejected.append((row_line, None, f"malformed CSV ({problem}){span}"))
        elif len(cells) != width:
            reason = f"has {len(cells)} fields; the header has {width}"
            batch.rejected.append((row_line, None, reason))
        else:
            description = None if description_at is None else cells[description_at] or None
            pending.lines.append(row_line)
            row = (cells[sku_at], cells[name_at], description, cells[price_at], cells[quantity_at])
            pending.rows.append(import_row(row))  # formulas' neutralisation undone
            if len(pending.rows) == _CHUNK:
                pending.validate_into(batch)
        if batch.rows == size:
            yield _finish(batch, pending, seen)
            batch = Batch(row_line)
    yield _finish(batch, pending, seen)


# Rows validated per call. Many rows per call is what makes validation fast,
# but a chunk with a refused row is validated twice.
_CHUNK = 32


@dataclass
class _Pending:
    """Well-formed rows waiting for validation, and their lines."""

    lines: list[int] = field(default_factory=list)
    rows: list[Cells] = field(default_factory=list)

    def validate_into(self, batch: Batch) -> None:
        """Move the rows to ``batch``: the valid ones to its records, the
        others to its rejections."""
        records, refused = validate_rows(self.rows)
        batch.records.extend(records)
        if refused:
            for index, (column, reason) in refused.items():
                batch.rejected.append((self.lines[index], column, reason))
            batch.lines.extend(line for i, line in enumerate(self.lines) if i not in refused)
        else:
            batch.lines.extend(self.lines)
        self.lines.clear()
        self.rows.clear()


def _finish(batch: Batch, pending: _Pending, seen: dict[str, int]) -> Batch:
    """``batch``, once its last rows are validated and repeated skus refused,
    its rejections in line order."""
    pending.validate_into(batch)
    _refuse_repeated_skus(batch, seen)
    batch.rejected.sort(key=lambda rejection: rejection[0])
    return batch


def _refuse_repeated_skus(batch: Batch, seen: dict[str, int]) -> None:
    """Move the records whose sku an earlier line had to the rejections."""
    skus = [record[0] for record in batch.records]
    if seen.keys().isdisjoint(skus) and len(set(skus)) == len(skus):  # the usual case
        seen.update(zip(skus, batch.lines, strict=True))
        return
    records, lines = batch.records, batch.lines
    batch.records, batch.lines = [], []
    for line, record in zip(lines, records, strict=True):
        first = seen.setdefault(record[0], line)
        if first != line:
            batch.rejected.append((line, "sku", f"repeats the sku of line {first}"))
        else:
            batch.records.append(record)
            batch.lines.append(line)


@dataclass
class ImportReport:
    """What an import did: its counts, and the first MAX_REPORTED_ERRORS row
    errors (the counts cover all)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batch: Batch, *, created: int, updated: int) -> None:
        """Count a batch, of whose valid rows ``created`` were new and
        ``updated`` changed an item (the others changed nothing)."""
        self.rows += batch.rows
        for line, column, reason in batch.rejected:
            self.skipped += 1
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append({"line": line, "column": column, "reason": reason})
        self.created += created
        self.updated += updated
        self.unchanged += len(batch.records) - created - updated

    def counts(self) -> dict[str, int]:
        """The counts a job reports as it goes."""
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }

    def result(self) -> dict[str, Any]:
        """The report its owner downloads."""
        return {
            **self.counts(),
            "errors": self.errors,
            "errors_truncated": self.skipped > len(self.errors),
        }


class ExportWriter:
    """An export being written: the header, then rows in CSV_COLUMNS order,
    so that an export imports back unchanged."""

    def __init__(self) -> None:
        self._buffer = io.StringIO(newline="")
        self._writer = csv.writer(self._buffer)
        self._writer.writerow(CSV_COLUMNS)

    def write(self, rows: Iterable[Record]) -> None:
        """Append rows (no description is an empty cell), text that would
        start a formula neutralised (:mod:`core.items.spreadsheet`)."""
        self._writer.writerows(export_row(row) for row in rows)

    def content(self) -> bytes:
        """The file, UTF-8."""
        return self._buffer.getvalue().encode("utf-8")
