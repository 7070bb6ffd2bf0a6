"""The checks of an upload before its import is queued, on its bytes: the
header's limits (bytes, columns), its check on the first bytes, and the
encoding check one chunk at a time. Their settings' bounds too."""

from __future__ import annotations

import codecs

import pytest
from pydantic import ValidationError

from core.items.csvfile import UploadProblem
from core.items.uploads import HeaderLimits, check_header, check_text, inspect_upload
from core.settings import JobSettings

LIMITS = HeaderLimits(max_bytes=64, max_columns=6)
HEADER = b"sku,name,price,quantity"
BOM = codecs.BOM_UTF8


def padded(size: int) -> bytes:
    """A valid header of ``size`` bytes: the last column name padded with
    spaces (names are matched trimmed)."""
    line = HEADER + b" " * (size - len(HEADER))
    assert len(line) == size
    return line


@pytest.mark.parametrize("bom", [b"", BOM])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_header_of_up_to_max_bytes_with_its_line_break_is_accepted(
    bom: bytes, newline: bytes
) -> None:
    fits = bom + padded(LIMITS.max_bytes - len(newline)) + newline
    assert check_header(fits + b"a,b,1,1\n", LIMITS, complete=True)
    assert check_header(fits + b"a,b,1,1\n", LIMITS, complete=False)  # the rest may come


@pytest.mark.parametrize("bom", [b"", BOM])
def test_a_header_one_byte_longer_is_refused(bom: bytes) -> None:
    over = bom + padded(LIMITS.max_bytes) + b"\n"
    for complete in (True, False):
        with pytest.raises(UploadProblem, match=r"longer than 64 bytes$"):
            check_header(over + b"a,b,1,1\n", LIMITS, complete=complete)


def test_a_whole_file_that_is_a_header_without_line_break_may_fill_the_limit() -> None:
    assert check_header(padded(LIMITS.max_bytes), LIMITS, complete=True)
    with pytest.raises(UploadProblem, match="longer than 64 bytes"):
        check_header(padded(LIMITS.max_bytes + 1), LIMITS, complete=True)


def test_columns_up_to_the_limit_then_refused() -> None:
    six = HEADER + b",description, description\n"
    with pytest.raises(UploadProblem, match="repeated columns: description"):
        check_header(six, LIMITS, complete=True)  # six columns: counted, then named
    with pytest.raises(UploadProblem, match=r"^CSV header has 7 columns; at most 6 are allowed$"):
        check_header(HEADER + b",a,b,c\n", LIMITS, complete=True)


def test_an_unfinished_header_is_undecided_until_the_limit() -> None:
    assert check_header(b"sku,na", LIMITS, complete=False) is False
    assert check_header(b'sku,"na', LIMITS, complete=False) is False  # a quote still open
    assert check_header(BOM, LIMITS, complete=False) is False
    # A character cut in two at the end is waited for, not refused.
    assert check_header(HEADER + ",é".encode()[:-1], LIMITS, complete=False) is False
    with pytest.raises(UploadProblem, match=r"malformed \(unexpected end of data\)"):
        check_header(b'sku,"na', LIMITS, complete=True)


@pytest.mark.parametrize("bom", [b"", BOM])
@pytest.mark.parametrize("size", [1, 30, 62, 63, 64, 65, 66, 200])
def test_the_first_head_bytes_always_settle_the_header(bom: bytes, size: int) -> None:
    """Given ``head_bytes`` of a longer file, the check decides: accepted or
    refused, never undecided (the API checks once, on those bytes)."""
    for line in (padded(max(size, len(HEADER))) + b"\n", b'"' + b"x" * size):
        head = (bom + line + b"a,b,1,1\n" * 40)[: LIMITS.head_bytes]
        try:
            settled = check_header(head, LIMITS, complete=False)
        except UploadProblem:
            continue  # refused: settled too
        assert settled is True


def test_a_megabyte_header_is_refused_for_its_length_with_a_short_message() -> None:
    header = b",".join([HEADER, *(b"c%07d" % n for n in range(120_000))])
    assert len(header) > 1_000_000
    limits = HeaderLimits(max_bytes=4096, max_columns=32)
    with pytest.raises(UploadProblem) as refused:
        inspect_upload(header + b"\na,b,1,1\n", limits)
    assert str(refused.value) == "CSV header (the first line) is longer than 4096 bytes"
    # Within the byte limit, the column limit comes first: nothing is named.
    with pytest.raises(UploadProblem, match=r"^CSV header has 500 columns; at most 32"):
        inspect_upload(b",".join([b"x"] * 500) + b"\n", limits)


def test_a_malformed_header_is_refused() -> None:
    with pytest.raises(UploadProblem, match=r"CSV header on line 1 is malformed \(',' expected"):
        check_header(b'"sku"x,name,price,quantity\n', LIMITS, complete=False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (b" \r\n\t\n", "file is empty"),
        (b"sku,name\xff,price,quantity\n", "not UTF-8 text (byte 0xff at offset 8)"),
        (b"sku,na\x00me,price,quantity\n", "NUL bytes"),
        (HEADER + b"\n" + "é".encode()[:1], "not UTF-8 text (byte 0xc3 at offset 24)"),
    ],
)
def test_text_checks(data: bytes, message: str) -> None:
    with pytest.raises(UploadProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_text(data)


def test_the_encoding_is_checked_across_chunks_at_its_true_offset() -> None:
    chunk = 256 * 1024
    accents = "é".encode() * chunk  # two chunks, characters cut at their edges
    check_text(HEADER + b"\n" + accents + b"\n")
    for at in (chunk - 1, chunk, chunk + 1, 3 * chunk // 2):
        data = bytearray(HEADER + b"\n" + b"a" * (2 * chunk))
        data[at] = 0xC3  # a lead byte followed by an ASCII one
        with pytest.raises(UploadProblem, match=rf"byte 0xc3 at offset {at}\)$"):
            check_text(bytes(data))


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("uploads_per_process", 1, 256),
        ("import_max_header_bytes", 64, 65_536),
        ("import_max_columns", 5, 1024),
    ],
)
def test_upload_settings_are_bounded(name: str, low: int, high: int) -> None:
    assert getattr(JobSettings.model_validate({name: low}), name) == low
    assert getattr(JobSettings.model_validate({name: high}), name) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(ValidationError):
            JobSettings.model_validate({name: bad})
