"""The checks an upload passes before its import is queued, on its bytes.

The API keeps one copy of an upload, as bytes: nothing here holds it as
text. Its encoding is checked one chunk at a time, and its header is parsed
from the first ``max_bytes`` only, so the header can be checked (and an
upload refused) as soon as those first bytes arrive, and in time linear in
the limit however long the line really is.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from core.items.csvfile import UploadProblem, parse_header

# Bytes decoded at a time: the text of one chunk is all the check holds.
_CHUNK = 256 * 1024
# A file this small is checked (by the API) and parsed (by the worker) on
# the event loop: a thread's round trip would cost more than the work, and
# the loop serves its other requests or jobs meanwhile only for the
# milliseconds it takes. A larger one goes to a thread.
ON_LOOP_MAX_BYTES = 64 * 1024
# The one error the csv module raises for a record the data stops inside.
_CUT_SHORT = "unexpected end of data"


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """How long a CSV header (its first record) may be: bytes (after a
    byte order mark) and columns."""

    max_bytes: int
    max_columns: int

    @property
    def head_bytes(self) -> int:
        """The first bytes of a file that settle its header's check."""
        return len(codecs.BOM_UTF8) + self.max_bytes + 1


def inspect_upload(data: bytes, limits: HeaderLimits) -> None:
    """Refuse at once what cannot be imported: an empty file, a file that is
    not UTF-8 or holds NUL bytes, a header too long or with missing,
    unknown or repeated columns (:class:`UploadProblem`)."""
    check_text(data)
    check_header(data, limits, complete=True)


def check_text(data: bytes) -> None:
    """Refuse an empty file, one that is not UTF-8, or one with NUL bytes.
    Linear, and holding the text of one chunk at a time."""
    if not data or data.isspace():
        raise UploadProblem("file is empty; expected a CSV header and rows")
    decoder = codecs.getincrementaldecoder("utf-8")()
    with memoryview(data) as view:
        for offset in range(0, len(data), _CHUNK):
            # A character cut by the chunk's end waits in the decoder.
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(view[offset : offset + _CHUNK], final=offset + _CHUNK >= len(data))
            except UnicodeDecodeError as exc:
                raise _not_utf8(data, offset - pending + exc.start) from None
    # In UTF-8 only the character NUL has a zero byte.
    if b"\x00" in data:
        raise UploadProblem("file contains NUL bytes; it is not a text CSV file")


def check_header(head: bytes, limits: HeaderLimits, *, complete: bool) -> bool:
    """Check the header at the start of ``head``: the first bytes of a file
    (``complete``: all of it). True once checked; False when ``head`` ends
    before the header does, within the limit (send more bytes: from
    ``limits.head_bytes`` on, the answer is never False). Raises
    :class:`UploadProblem` for a header longer than the limit, with more
    columns than the limit, malformed, or with wrong columns."""
    start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    window = head[start : start + limits.max_bytes]
    cut = len(head) - start > limits.max_bytes  # bytes beyond the window
    more = cut or not complete  # the file may go on after the window
    try:
        # A character the window cuts in two is left out: more may follow.
        text = codecs.getincrementaldecoder("utf-8")().decode(window, final=not more)
    except UnicodeDecodeError as exc:
        raise _not_utf8(head, start + exc.start) from None
    lines = _Lines(text)
    try:
        header = next(csv.reader(lines, strict=True), None)
    except csv.Error as exc:
        if more and str(exc) == _CUT_SHORT:  # a quoted field still open
            return _undecided(limits, cut)
        raise UploadProblem(f"CSV header on line 1 is malformed ({exc})") from None
    if more and not lines.ended_line:
        return _undecided(limits, cut)
    if not header:
        raise UploadProblem("file has no CSV header on its first line")
    if len(header) > limits.max_columns:
        raise UploadProblem(
            f"CSV header has {len(header)} columns; at most {limits.max_columns} are allowed"
        )
    parse_header(header)
    return True


class _Lines:
    """The lines of ``text`` for the csv module, remembering whether the last
    one it read ended with a line break (else the text ran out)."""

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")
        self.ended_line = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.ended_line = line.endswith(("\n", "\r"))
        return line


def _undecided(limits: HeaderLimits, cut: bool) -> bool:
    """The header goes on past the window: too long when the window is full,
    else not decided yet."""
    if cut:
        raise UploadProblem(f"CSV header (the first line) is longer than {limits.max_bytes} bytes")
    return False


def _not_utf8(data: bytes, at: int) -> UploadProblem:
    return UploadProblem(f"file is not UTF-8 text (byte 0x{data[at]:02x} at offset {at})")
