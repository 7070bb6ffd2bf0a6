"""Reading an upload from a multipart body as it streams in (api/uploads.py),
fed through the ASGI ``receive`` interface: its bounds, its refusals, the
early look at the first bytes, and the one copy it keeps."""

from __future__ import annotations

import tracemalloc

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from api.uploads import MAX_PARTS, ReceivedFile, receive_file
from core.errors import PayloadTooLarge
from core.items import uploads
from core.items.csvfile import UploadProblem

BOUNDARY = b"test-boundary"
MULTIPART = b"multipart/form-data; boundary=" + BOUNDARY
CSV = b"sku,name,description,price,quantity\na,Mug,,1.00,1\n"
MiB = 1024 * 1024


def part(name: str, content: bytes, *, filename: str | None = "items.csv") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n"
    )


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def request(body: bytes, content_type: bytes = MULTIPART, chunk: int = 64 * 1024) -> Request:
    """A request whose body arrives in ``chunk``-byte messages."""
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]

    async def receive() -> Message:
        if chunks:
            data = chunks.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/items/import",
        "query_string": b"",
        "headers": [(b"content-type", content_type)],
    }
    return Request(scope, receive)


Seen = list[tuple[str | None, bytes]]


async def read(
    body: bytes, content_type: bytes = MULTIPART, *, max_bytes: int = MiB, seen: Seen | None = None
) -> ReceivedFile:
    def check_head(content_type: str | None, head: bytes) -> None:
        if seen is not None:
            seen.append((content_type, head))

    return await receive_file(
        request(body, content_type),
        "file",
        max_bytes=max_bytes,
        head_bytes=100,
        check_head=check_head,
    )


async def test_the_file_part_is_read_and_other_parts_dropped() -> None:
    body = form(part("note", b"x" * 5000, filename=None), part("file", CSV), part("file", b"2nd"))
    received = await read(body)
    assert received == ReceivedFile(CSV, "items.csv", "text/csv")


async def test_a_file_name_in_utf8_or_not_is_kept_as_text() -> None:
    assert (await read(form(part("file", CSV, filename="é.csv")))).filename == "é.csv"
    raw = part("file", CSV).replace(b"items.csv", b"\xe9.csv")  # Latin-1
    assert (await read(form(raw))).filename == "é.csv"


async def test_the_head_is_seen_once_when_it_has_arrived() -> None:
    seen: Seen = []
    content = CSV * 100
    await read(form(part("file", content)), seen=seen)
    assert seen == [("text/csv", content[:100])]
    seen.clear()
    await read(form(part("file", CSV[:99])), seen=seen)
    assert seen == []  # shorter than the head: the caller checks it whole


async def test_the_head_check_refuses_before_the_rest_is_read() -> None:
    received: list[int] = []
    body = form(part("file", CSV * 100_000))  # 5 MB
    chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]

    async def receive() -> Message:
        received.append(1)
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    def refuse(content_type: str | None, head: bytes) -> None:
        raise UploadProblem("no")

    with pytest.raises(UploadProblem):
        await receive_file(
            Request(request(b"").scope, receive),
            "file",
            max_bytes=10 * MiB,
            head_bytes=4100,
            check_head=refuse,
        )
    assert len(received) <= 6  # of about 5,000 chunks


async def test_a_file_past_its_limit_is_413() -> None:
    await read(form(part("file", b"x" * 1000)), max_bytes=1000)
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 1000 bytes"):
        await read(form(part("file", b"x" * 1001)), max_bytes=1000)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"file": "x"}', b"application/json"),
        (b"file=x", b"application/x-www-form-urlencoded"),
        (form(part("other", CSV)), MULTIPART),
        (form(), MULTIPART),
    ],
)
async def test_no_file_field_is_the_422_of_a_missing_field(
    body: bytes, content_type: bytes
) -> None:
    with pytest.raises(RequestValidationError) as refused:
        await read(body, content_type)
    assert refused.value.errors()[0]["loc"] == ("body", "file")
    assert refused.value.errors()[0]["type"] == "missing"


def too_many_parts() -> bytes:
    return form(*(part(f"f{n}", b"x", filename=None) for n in range(MAX_PARTS)), part("file", CSV))


def with_part_headers(*lines: bytes) -> bytes:
    headers = b"".join(line + b"\r\n" for line in lines)
    return form(part("file", CSV).replace(b"Content-Type", headers + b"Content-Type"))


# python-multipart's bounds on a part's headers: 8, each at most 4,224 bytes.
LONGEST_HEADER = b"X-Filler: " + b"y" * (4224 - 10)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (CSV, b"multipart/form-data"),  # no boundary
        (form(part("file", CSV))[:-30], MULTIPART),  # ends inside the file
        (b"--" + BOUNDARY + b"\r\nno headers end", MULTIPART),
        (too_many_parts(), MULTIPART),
        (with_part_headers(LONGEST_HEADER + b"y"), MULTIPART),
        (with_part_headers(*[b"X-Filler: y"] * 7), MULTIPART),
        # python-multipart refuses a boundary over 256 bytes when it is built.
        (CSV, b"multipart/form-data; boundary=" + b"b" * 257),
    ],
    ids=[
        "no-boundary",
        "truncated",
        "garbage",
        "too-many-parts",
        "long-header",
        "nine-headers",
        "long-boundary",
    ],
)
async def test_malformed_bodies_are_400(body: bytes, content_type: bytes) -> None:
    with pytest.raises(HTTPException) as refused:
        await read(body, content_type)
    assert refused.value.status_code == 400


async def test_the_bounds_are_inclusive() -> None:
    at_most = form(*(part(f"f{n}", b"x", filename=None) for n in range(MAX_PARTS - 1)))
    assert (await read(at_most[: -len(BOUNDARY) - 6] + form(part("file", CSV)))).data == CSV
    fits = with_part_headers(LONGEST_HEADER, *[b"X-Filler: y"] * 5)  # 8 with the two
    assert (await read(fits)).data == CSV


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
async def test_any_chunking_reads_the_same_file(chunk: int) -> None:
    content = CSV * 50 + "é\U0001f600\n".encode()
    body = form(part("note", b"--" + BOUNDARY[:-1], filename=None), part("file", content))
    received = await receive_file(
        request(body, chunk=chunk), "file", max_bytes=MiB, head_bytes=100, check_head=_ok
    )
    assert received.data == content


def _ok(content_type: str | None, head: bytes) -> None:
    pass


async def test_a_20_mib_upload_is_held_once_and_checked_without_decoding_it_whole() -> None:
    """Before: Starlette's spooled file (on /tmp), ``read()``, the decoded
    text and a StringIO of it (4 bytes a character with one emoji): a peak
    of 6 to 9 times the file. Now: the buffer whose bytes are handed over,
    and one decoded chunk at a time."""
    row = b"sku-0000000,Mug,,1.00,1\n"
    content = CSV + row * (20 * MiB // len(row) - 3) + "x,\U0001f600,,1,1\n".encode()
    body = form(part("file", content))
    limits = uploads.HeaderLimits(4096, 32)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        received = await receive_file(
            request(body), "file", max_bytes=21 * MiB, head_bytes=limits.head_bytes, check_head=_ok
        )
        uploads.inspect_upload(received.data, limits)
        held, peak = (size - base for size in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    assert received.data == content
    assert len(content) <= held < 1.05 * len(content)
    assert peak < 1.25 * len(content)
