"""The item CSV format: reading and checking uploads, validating rows with the
item rules of :mod:`core.items.fields`, and writing exports. No database, no
jobs: :mod:`core.items.jobs` runs these, :mod:`core.items.repository` stores
what they return.

An upload is checked at once (:mod:`core.items.uploads`: encoding, header); its
rows are validated later, in batches (:func:`batches`), each row reported
with its line, column and reason when it is refused. The worker reads the
file as a stream of chunks (:func:`records`, :mod:`core.items.textstream`),
so its memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from core.items.report import MAX_REPORTED_ERRORS as MAX_REPORTED_ERRORS
from core.items.report import ImportReport as ImportReport
from core.items.rows import CSV_COLUMNS, Cells, Record, validate_rows
from core.items.spreadsheet import export_row, import_row
from core.items.textstream import MAX_RECORD_CHARS, Lines, Text
from core.items.textstream import UploadProblem as UploadProblem

REQUIRED_COLUMNS = frozenset({"sku", "name", "price", "quantity"})
KNOWN_COLUMNS = frozenset(CSV_COLUMNS)
# A refused header names its first 10 unknown columns, each cut to 40 characters.
MAX_NAMED_COLUMNS, _NAME_SHOWN = 10, 40
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

# A batch is cut after this many bytes of the file, however few rows it has:
# a batch's rows are held until written.
BATCH_MAX_BYTES = 1024 * 1024

# The csv module's field limit is global to the process; set here, once, to
# the module's default: :class:`Lines` bounds a record (a longer one is a
# refused row), so this second guard is never reached. Safe for the only other
# reader in the api and worker processes, the upload header check
# (core/items/uploads.py), whose header is at most IMPORT_MAX_HEADER_BYTES.
csv.field_size_limit(MAX_RECORD_CHARS)

# A refused row: its line, the column at fault (None: the whole record), why.
Rejection = tuple[int, str | None, str]
Reader = Any  # the csv module's reader type is private


def is_csv_media_type(content_type: str) -> bool:
    """Whether an upload's Content-Type may be a CSV file."""
    return content_type.split(";")[0].strip().lower() in CSV_MEDIA_TYPES


class Records:
    """The records of a CSV text read line by line (:class:`Lines`): each
    ``next`` is one record's cells. ``line_num`` counts the lines read,
    ``bytes_read`` their bytes. A record longer than MAX_RECORD_CHARS raises
    :class:`RecordTooLong` (a :class:`csv.Error`); reading goes on after it.
    A file that is not UTF-8 raises :class:`UploadProblem` where it stops
    being UTF-8."""

    def __init__(self, lines: Lines) -> None:
        self._lines = lines
        # strict: a stray quote is an error for that record (reported), and
        # a quote never closed is an error at the end of the file, rather
        # than the rest of the file silently read as one cell.
        self._reader: Reader = csv.reader(lines, strict=True)

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> list[str]:
        self._lines.start_record()
        cells: list[str] = next(self._reader)
        return cells

    @property
    def line_num(self) -> int:
        """Lines read (or skipped) so far."""
        return self._lines.line_num

    @property
    def bytes_read(self) -> int:
        """Bytes of the file read so far (a byte order mark not counted)."""
        return self._lines.bytes_out


def records(chunks: Iterable[bytes]) -> Records:
    """The records of a UTF-8 CSV file given as chunks of bytes (with or
    without a byte order mark), decoded as they are read."""
    return Records(Lines(Text(chunks)))


def reader(content: str) -> Records:
    """The records of ``content``."""
    return Records(Lines([content]))


def read_header(rows: Records) -> list[str]:
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
    and the refused ones; how many rows, and the line of the last; the bytes
    of the file read up to its end; whether it is the file's last."""

    last_line: int
    rows: int = 0
    bytes_read: int = 0
    final: bool = False
    records: list[Record] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def batches(
    rows: Records, columns: dict[str, int], width: int, size: int, first: int = 0
) -> Iterator[Batch]:
    """Validate the records after the header (``rows`` has read it), ``size``
    at a time, the first batch ``first`` when given (fewer when they span more
    than BATCH_MAX_BYTES). A blank line is no row; a repeated sku is refused,
    naming the line that first had it."""
    sku_at, name_at = columns["sku"], columns["name"]
    price_at, quantity_at = columns["price"], columns["quantity"]
    description_at = columns.get("description")
    seen: dict[str, int] = {}
    batch, pending, limit = Batch(0), _Pending(), min(first or size, size)
    line = rows.line_num + 1  # where the next record starts
    start = rows.bytes_read  # where the batch starts
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
        if batch.rows == limit or rows.bytes_read - start >= BATCH_MAX_BYTES:
            batch.bytes_read = start = rows.bytes_read
            yield _finish(batch, pending, seen)
            batch, limit = Batch(row_line), size
    batch.bytes_read, batch.final = rows.bytes_read, True
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

    def take(self) -> bytes:
        """What was written since the last ``take`` (the header first),
        UTF-8, and forget it: a caller that stores each piece holds no more
        than one at a time."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")
