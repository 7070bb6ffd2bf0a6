"""The item CSV format, without a database: headers, row reports, exports."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.items import csvfile

REQUIRED = ["sku", "name", "price", "quantity"]


def test_a_header_is_matched_trimmed_and_in_any_case() -> None:
    assert csvfile.parse_header([" Quantity", "PRICE ", "sku", "Name", "description"]) == {
        "quantity": 0,
        "price": 1,
        "sku": 2,
        "name": 3,
        "description": 4,
    }


def test_a_huge_header_of_unknown_columns_is_refused_naming_them_in_order() -> None:
    """16,000 columns (about 200 KB): the check is linear in the header, so
    it takes no longer than reading it."""
    unknown = [f"colour-{n}" for n in range(16_000, 0, -1)]
    with pytest.raises(csvfile.UploadProblem) as refused:
        csvfile.parse_header([*REQUIRED, *unknown, *unknown])  # each twice
    message = str(refused.value)
    assert message.startswith("CSV header: unknown columns: 'colour-16000', 'colour-15999', ")
    assert message.count("'colour-") == 16_000
    assert "'colour-1' (allowed: sku, name, description, price, quantity)" in message
    assert "repeated" not in message  # only known columns are said to repeat


def test_a_huge_header_repeating_known_columns_is_refused() -> None:
    header = REQUIRED + ["sku", "Name "] * 8_000
    with pytest.raises(csvfile.UploadProblem, match=r"^CSV header: repeated columns: name, sku$"):
        csvfile.parse_header(header)


def test_a_megabyte_header_upload_is_inspected() -> None:
    header = ",".join([*REQUIRED, *(f"c{n:07d}" for n in range(120_000))])
    assert len(header) > 1_000_000
    with pytest.raises(csvfile.UploadProblem, match="unknown columns: 'c0000000', 'c0000001'"):
        csvfile.inspect_upload(header.encode() + b"\na,b,1,1\n")


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
