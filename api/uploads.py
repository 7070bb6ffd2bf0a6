"""An uploaded file, read from a multipart body as it streams in.

A FastAPI ``File`` parameter goes through Starlette's form parser, which
writes each file to a temporary file (spooled to /tmp past 1 MiB, a
memory-backed tmpfs in containers) and only then runs the route, whose
``read()`` makes a second copy. Here the one file part is written to a
buffer whose bytes are handed over without a copy (bounded by its limit),
every other part is dropped, and the route's dependencies (the caller's
session) run before any of it is read. A callback sees the file's first
bytes as soon as they arrive, so a bad upload is refused without reading
the rest.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from core.errors import PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Parts of one body (the file, and whatever else a form sends along). The
# headers of a part are bounded by python-multipart: at most 8, each line at
# most 4,224 bytes.
MAX_PARTS = 16


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """The file part's bytes, and what its headers said."""

    data: bytes
    filename: str | None
    content_type: str | None


# Called with the file's content type and its first ``head_bytes`` bytes;
# raises to refuse the upload.
HeadCheck = Callable[[str | None, bytes], None]


def missing_file(field: str) -> RequestValidationError:
    """The 422 FastAPI answers for a missing form field."""
    error = {"type": "missing", "loc": ("body", field), "msg": "Field required", "input": None}
    return RequestValidationError([error])


def malformed() -> HTTPException:
    """The 400 of a body that is not the multipart it says (rendered in the
    error shape by api.errors)."""
    return HTTPException(status_code=400)


class _FilePart:
    """The parser's callbacks: keep the data of the first part named
    ``field``, drop every other part's."""

    def __init__(self, field: bytes, max_bytes: int) -> None:
        self.field = field
        self.max_bytes = max_bytes
        self.buffer = io.BytesIO()
        self.filename: str | None = None
        self.content_type: str | None = None
        self.state = "absent"  # then "reading", then "read"
        self._parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._name = self._value = b""
        self._in_file = False

    def callbacks(self) -> MultipartCallbacks:
        """The callbacks, for the parser."""
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise malformed()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        self._in_file = self.state == "absent" and options.get(b"name") == self.field
        if self._in_file:
            self.state = "reading"
            filename = options.get(b"filename")
            self.filename = None if filename is None else _text(filename)
            content_type = self._headers.get(b"content-type")
            self.content_type = None if content_type is None else content_type.decode("latin-1")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        if self.buffer.tell() + end - start > self.max_bytes:
            raise PayloadTooLarge(f"file is larger than the limit of {self.max_bytes} bytes")
        with memoryview(data) as view:  # no copy of the slice
            self.buffer.write(view[start:end])

    def on_part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.state = "read"

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of the file so far."""
        with self.buffer.getbuffer() as view:  # released, or the buffer could not grow
            return bytes(view[:size])


def _text(value: bytes) -> str:
    # Browsers send UTF-8 file names; anything else is still shown.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def receive_file(
    request: Request, field: str, *, max_bytes: int, head_bytes: int, check_head: HeadCheck
) -> ReceivedFile:
    """The file of the multipart form field ``field``, read as the body
    streams in: 413 (:class:`PayloadTooLarge`) past ``max_bytes``, 400 for
    a body that is not well-formed multipart, 422 without that field.
    ``check_head`` sees the file's first ``head_bytes`` once they arrive
    (a shorter file is the caller's to check whole)."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        raise missing_file(field)
    if not params.get(b"boundary"):
        raise malformed()
    part = _FilePart(field.encode(), max_bytes)
    checked = False
    try:
        # Inside the try: the parser refuses some boundaries (over 256 bytes).
        parser = MultipartParser(params[b"boundary"], part.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            if not checked and part.buffer.tell() >= head_bytes:
                check_head(part.content_type, part.head(head_bytes))
                checked = True
        parser.finalize()
    except (FormParserError, ClientDisconnect):
        raise malformed() from None
    if part.state == "absent":
        raise missing_file(field)
    if part.state == "reading":  # the body ended inside the file
        raise malformed()
    # The buffer's own bytes, handed over without a copy.
    return ReceivedFile(part.buffer.getvalue(), part.filename, part.content_type)
