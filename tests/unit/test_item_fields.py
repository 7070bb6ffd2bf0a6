"""One definition of the item rules: the API's field types and the CSV
import's rows accept and refuse exactly the same values."""

from __future__ import annotations

import csv
import io
import json

import pytest
from pydantic import ValidationError

from api.schemas.items import ItemCreate
from core.items import csvfile, fields
from core.items.rows import CSV_COLUMNS

# A valid value of every column; each case below replaces one of them.
VALID = {"sku": "a-1", "name": "Mug", "description": "Blue", "price": "4.50", "quantity": "3"}


ACCEPTED, REFUSED = True, False
WHITESPACE = [" ", "\t", "\u00a0", "\u3000"]

CASES: list[tuple[str, str, bool]] = [
    # sku: 1-64 letters, digits, '.', '_' and '-'
    ("sku", "", REFUSED),
    ("sku", "a", ACCEPTED),
    ("sku", "A1.b_c-D", ACCEPTED),
    ("sku", "-", ACCEPTED),
    ("sku", "s" * fields.SKU_MAX_LENGTH, ACCEPTED),
    ("sku", "s" * (fields.SKU_MAX_LENGTH + 1), REFUSED),
    ("sku", "s" * 100_000, REFUSED),
    ("sku", "a b", REFUSED),
    ("sku", " a", REFUSED),
    ("sku", "a ", REFUSED),
    ("sku", "a\n", REFUSED),
    ("sku", "a\r\n", REFUSED),
    ("sku", "a\x00", REFUSED),
    ("sku", "a\ud800", REFUSED),
    ("sku", "é", REFUSED),
    ("sku", "a/b", REFUSED),
    ("sku", "a,b", REFUSED),
    ("sku", '"a"', REFUSED),
    *[("sku", space, REFUSED) for space in WHITESPACE],
    # name: 1-200 storable characters
    ("name", "", REFUSED),
    ("name", "x", ACCEPTED),
    ("name", "x" * fields.NAME_MAX_LENGTH, ACCEPTED),
    ("name", "é" * fields.NAME_MAX_LENGTH, ACCEPTED),
    ("name", "x" * (fields.NAME_MAX_LENGTH + 1), REFUSED),
    ("name", "x" * 100_000, REFUSED),
    ("name", "a\x00b", REFUSED),
    ("name", "\x00", REFUSED),
    ("name", "a\ud800b", REFUSED),
    ("name", "\udfff", REFUSED),
    ("name", "line\nbreak", ACCEPTED),
    ("name", 'comma, "quoted"', ACCEPTED),
    ("name", "\U0001f600", ACCEPTED),
    *[("name", space, ACCEPTED) for space in WHITESPACE],
    # description: up to 10,000 storable characters (an empty CSV cell is none)
    ("description", "", ACCEPTED),
    ("description", "d", ACCEPTED),
    ("description", "d" * fields.DESCRIPTION_MAX_LENGTH, ACCEPTED),
    ("description", "d" * (fields.DESCRIPTION_MAX_LENGTH + 1), REFUSED),
    ("description", "\x00", REFUSED),
    ("description", "\ud800", REFUSED),
    ("description", "\r\n", ACCEPTED),
    *[("description", space, ACCEPTED) for space in WHITESPACE],
    # price: 0 to 9999999999.99, at most 2 decimal places, finite
    ("price", "", REFUSED),
    ("price", " ", REFUSED),
    ("price", "0", ACCEPTED),
    ("price", "0.00", ACCEPTED),
    ("price", "1", ACCEPTED),
    ("price", "1.5", ACCEPTED),
    ("price", "1.50", ACCEPTED),
    ("price", "1.500", ACCEPTED),
    ("price", "1.001", REFUSED),
    ("price", "0.001", REFUSED),
    ("price", "-1", REFUSED),
    ("price", "-0.01", REFUSED),
    ("price", "-0", ACCEPTED),
    ("price", "+1", ACCEPTED),
    ("price", " 1 ", ACCEPTED),
    ("price", "\t1\n", ACCEPTED),
    ("price", "1e2", ACCEPTED),
    ("price", "1E-2", ACCEPTED),
    ("price", "1e-3", REFUSED),
    ("price", "1e999999", REFUSED),
    ("price", "1e-999999", REFUSED),
    ("price", "9999999999.99", ACCEPTED),
    ("price", "9999999999.999", REFUSED),
    ("price", "10000000000", REFUSED),
    ("price", "9" * 5000, REFUSED),
    ("price", "0." + "0" * 5000, ACCEPTED),
    ("price", "NaN", REFUSED),
    ("price", "nan", REFUSED),
    ("price", "sNaN", REFUSED),
    ("price", "Infinity", REFUSED),
    ("price", "inf", REFUSED),
    ("price", "-inf", REFUSED),
    ("price", "1_000", ACCEPTED),
    ("price", "1,5", REFUSED),
    ("price", "abc", REFUSED),
    ("price", "0x10", REFUSED),
    ("price", "\u0661", ACCEPTED),  # an Arabic-Indic 1: Decimal reads any digit
    ("price", "1\x00", REFUSED),
    ("price", "1\ud800", REFUSED),
    # quantity: a whole number from 0 to 2147483647
    ("quantity", "", REFUSED),
    ("quantity", " ", REFUSED),
    ("quantity", "0", ACCEPTED),
    ("quantity", "1", ACCEPTED),
    ("quantity", "01", ACCEPTED),
    ("quantity", "-1", REFUSED),
    ("quantity", "-0", ACCEPTED),
    ("quantity", "+1", ACCEPTED),
    ("quantity", " 1 ", ACCEPTED),
    ("quantity", "\t1\n", ACCEPTED),
    ("quantity", "1.0", ACCEPTED),
    ("quantity", "1.5", REFUSED),
    ("quantity", "1e2", REFUSED),
    ("quantity", "1_000", ACCEPTED),
    ("quantity", "2147483647", ACCEPTED),
    ("quantity", "2147483648", REFUSED),
    ("quantity", "9" * 20, REFUSED),
    ("quantity", "9" * 5000, REFUSED),
    ("quantity", "-" + "9" * 5000, REFUSED),
    ("quantity", "0x10", REFUSED),
    ("quantity", "\u0661", REFUSED),
    ("quantity", "NaN", REFUSED),
    ("quantity", "abc", REFUSED),
    ("quantity", "1\x00", REFUSED),
    ("quantity", "1\ud800", REFUSED),
]


def api_accepts(column: str, value: str) -> bool:
    """Whether ``POST /api/v1/items`` takes ``value`` in ``column`` of a
    valid body: the route's schema, read from JSON as FastAPI reads it."""
    body = json.dumps({**VALID, column: value})
    try:
        ItemCreate.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return True
    # Only the column under test is refused (a lone surrogate makes the whole
    # JSON document unreadable: an error without a location).
    assert {error["loc"][0] if error["loc"] else column for error in errors} == {column}
    return False


def csv_refusals(column: str, value: str) -> list[csvfile.Rejection]:
    """The row's refusals when ``value`` is written in ``column`` of a
    one-row CSV file and read back as an import reads it."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerow([value if name == column else VALID[name] for name in CSV_COLUMNS])
    rows = csvfile.reader(buffer.getvalue())
    header = csvfile.read_header(rows)
    [batch] = csvfile.batches(rows, csvfile.parse_header(header), len(header), 100)
    assert batch.rows == 1
    assert len(batch.records) + len(batch.rejected) == 1
    return batch.rejected


@pytest.mark.parametrize(
    ("column", "value", "accepted"),
    CASES,
    ids=[f"{column}-{n}" for n, (column, _, _) in enumerate(CASES)],
)
def test_the_api_and_the_csv_import_agree(column: str, value: str, accepted: bool) -> None:
    assert api_accepts(column, value) is accepted
    refusals = csv_refusals(column, value)
    assert (not refusals) is accepted
    if refusals:
        [(line, refused_column, reason)] = refusals
        assert (line, refused_column) == (2, column)
        assert reason


def test_every_column_has_accepted_and_refused_cases() -> None:
    for column in CSV_COLUMNS:
        outcomes = {accepted for name, _, accepted in CASES if name == column}
        assert outcomes == {ACCEPTED, REFUSED}, column


def test_the_valid_row_is_valid() -> None:
    for column in CSV_COLUMNS:
        assert api_accepts(column, VALID[column])
    assert csv_refusals("sku", VALID["sku"]) == []
