"""An import's file read as a stream of chunks: decoding, lines, the bound on
one record, and the memory a maximum-size file takes to parse."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from decimal import Decimal

import pytest

from core.items import csvfile
from core.items.textstream import MAX_RECORD_CHARS, UploadProblem

MIB = 1024 * 1024
HEADER = b"sku,name,description,price,quantity\n"


def parse(chunks: Iterator[bytes] | list[bytes], size: int = 100) -> list[csvfile.Batch]:
    rows = csvfile.records(chunks)
    header = csvfile.read_header(rows)
    return list(csvfile.batches(rows, csvfile.parse_header(header), len(header), size))


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """``data`` cut in two at each offset."""
    for at in range(len(data) + 1):
        yield [data[:at], data[at:]]


def test_a_file_reads_the_same_however_its_chunks_are_cut() -> None:
    """A byte order mark, a character, a \\r\\n or a quoted line break cut
    by a chunk's end: the rows and their lines do not change."""
    data = (
        "\ufeffsku,name,price,quantity\r\n"
        'a,"Ünïcode 😀\r\nsecond line",1,1\r\n'
        "\r\n"
        "b,Bé,2,2\rc,C,3,3\n"
        "d,D,4,4"
    ).encode()
    expected = [
        (("a", "Ünïcode 😀\r\nsecond line"), 2),
        (("b", "Bé"), 5),
        (("c", "C"), 6),
        (("d", "D"), 7),
    ]
    for chunks in every_split(data):
        [batch] = parse(chunks)
        pairs = zip(batch.records, batch.lines, strict=True)
        assert [(record[:2], line) for record, line in pairs] == expected
        assert batch.bytes_read == len(data) - 3  # all of it but the byte order mark
        assert batch.final


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"sku,name,price,quantity\na,\xff,1,1\n", "byte 0xff at offset 26"),
        (b"\xef\xbb\xbfsku,name,price,quantity\na,\xc3(,1,1\n", "byte 0xc3 at offset 29"),
        (b"sku,name,price,quantity\na,b,1,1\xe2\x82", "byte 0xe2 at offset 31"),
    ],
)
def test_a_byte_that_is_not_utf8_is_named_with_its_offset_in_the_file(
    data: bytes, message: str
) -> None:
    for chunks in every_split(data):
        with pytest.raises(UploadProblem, match=f"^file is not UTF-8 text \\({message}\\)$"):
            parse(chunks)


def test_a_record_longer_than_the_limit_is_a_refused_row_and_reading_goes_on() -> None:
    long = b"x" * (MAX_RECORD_CHARS + 1)
    data = HEADER + b"a,A,," + long + b",1\nb,B,,1,1\n" + b'c,"' + b"y\n" * MAX_RECORD_CHARS
    [batch] = parse([data[n : n + 4096] for n in range(0, len(data), 4096)], size=10**6)
    assert batch.rejected[0] == (
        2,
        None,
        f"malformed CSV (a record longer than {MAX_RECORD_CHARS} characters, which no valid "
        "row is; the rest of its line was skipped)",
    )
    assert batch.records == [("b", "B", None, Decimal(1), 1)]
    assert batch.lines == [3]
    # The quoted field that never ends is cut at the line that takes it past
    # the limit: its first line has 5 characters, each next one 2.
    cut = 4 + (MAX_RECORD_CHARS - 5) // 2 + 1
    assert batch.rejected[1][0] == 4
    assert batch.rejected[1][2].endswith(f"; lines 4-{cut} were read as this record")


def test_a_long_valid_description_is_refused_by_its_rule_not_the_record_limit() -> None:
    data = HEADER + b"a,A," + "é".encode() * 10_001 + b",1,1\n"
    [batch] = parse([data])
    assert batch.rejected == [(2, "description", "is longer than 10000 characters")]


def test_batches_are_cut_by_bytes_as_well_as_rows() -> None:
    row = b"s%d,Name," + b"d" * 9_000 + b",1,1\n"
    data = HEADER + b"".join(row % n for n in range(300))
    batches = parse([data], size=20_000)
    assert len(batches) == 3  # 2.7 MB: 1 MiB, 1 MiB and the rest
    assert sum(len(batch.records) for batch in batches) == 300
    assert batches[0].bytes_read >= csvfile.BATCH_MAX_BYTES


def generated(first: bytes, unit: bytes, total: int, chunk: int = MIB) -> Iterator[bytes]:
    """``first`` then ``unit`` repeated up to ``total`` bytes, ``chunk`` at a
    time, never held whole."""
    body = (unit * (chunk // len(unit) + 1))[:chunk]
    yield first
    sent = len(first)
    while sent < total:
        piece = body[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def peak_while_parsing(chunks: Iterator[bytes]) -> tuple[int, list[csvfile.Batch]]:
    """The most memory Python held while the chunks were parsed (the batches
    dropped once made, as the import writes and drops them)."""
    kept: list[csvfile.Batch] = []
    tracemalloc.start()
    try:
        rows = csvfile.records(chunks)
        header = csvfile.read_header(rows)
        for batch in csvfile.batches(rows, csvfile.parse_header(header), len(header), 20_000):
            kept.append(csvfile.Batch(batch.last_line, batch.rows, rejected=batch.rejected[:3]))
        return tracemalloc.get_traced_memory()[1], kept
    finally:
        tracemalloc.stop()


# The whole file is 20 MiB; its text as one string would be 20 to 80 MB.
MEMORY_BOUND = 12 * MIB


def test_a_20_mib_file_of_one_huge_field_is_parsed_in_bounded_memory() -> None:
    peak, batches = peak_while_parsing(generated(HEADER + b"a,A,,", b"x", 20 * MIB))
    assert peak < MEMORY_BOUND, f"peak {peak / MIB:.1f} MiB"
    assert sum(batch.rows for batch in batches) == 1
    assert batches[0].rejected[0][:2] == (2, None)


def test_a_20_mib_file_of_non_latin1_text_is_parsed_in_bounded_memory() -> None:
    # Valid rows of CJK names and descriptions with an emoji, which makes
    # Python store their text at 4 bytes a character.
    name, description = "名前の長い品物" * 20, "説明文😀" * 500

    def rows() -> Iterator[bytes]:
        yield HEADER
        sent, n, piece = len(HEADER), 0, bytearray()
        while sent < 20 * MIB:
            row = f"s{n},{name},{description},1.00,1\n".encode()
            piece += row
            sent, n = sent + len(row), n + 1
            if len(piece) >= MIB:
                yield bytes(piece)
                piece.clear()
        yield bytes(piece)

    peak, batches = peak_while_parsing(rows())
    assert peak < MEMORY_BOUND, f"peak {peak / MIB:.1f} MiB"
    assert sum(batch.rows for batch in batches) > 3000
    assert not any(batch.rejected for batch in batches)
