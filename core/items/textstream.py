"""An uploaded CSV file read as a stream: chunks of bytes decoded a slice at a
time, and cut into the lines the csv module reads, each record's text
bounded. However large the file, and whatever it holds (one field of 20 MiB,
text outside Latin-1, which Python stores at up to 4 bytes a character),
reading it holds one slice of text, one record, and what the caller keeps.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator

# Bytes decoded at a time: the text of one slice is all the decoder holds.
DECODE_BYTES = 256 * 1024
# The most characters one record (a row and its line breaks, quotes doubled)
# may have. The longest valid row is about 10,300 characters (a 10,000
# character description; twice that when every character is a quote), so
# every cell up to several times its column's limit is still refused by that
# column's rule, with its name; anything longer is refused as a whole row,
# without being read whole. (The csv module's own default field limit.)
MAX_RECORD_CHARS = 128 * 1024


class UploadProblem(ValueError):
    """An upload the API refuses at once (or a stored file the worker cannot
    read as CSV text)."""


class RecordTooLong(csv.Error):
    """A record longer than MAX_RECORD_CHARS: reported as a refused row; the
    rest of the line it stopped in is skipped."""


def not_utf8(byte: int, offset: int) -> UploadProblem:
    """What a file that is not UTF-8 is told."""
    return UploadProblem(f"file is not UTF-8 text (byte 0x{byte:02x} at offset {offset})")


class Text:
    """The text of a UTF-8 file given as chunks of bytes, a slice at a time;
    a byte order mark at its start is dropped. Raises :class:`UploadProblem`
    at the first byte that is not UTF-8 (its offset in the file)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._texts = self._decode(chunks)
        self.bytes_read = 0  # bytes decoded so far

    def __iter__(self) -> Iterator[str]:
        return self._texts

    def _decode(self, chunks: Iterable[bytes]) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        at_start = True
        for chunk in chunks:
            with memoryview(chunk) as view:
                for start in range(0, len(view), DECODE_BYTES):
                    piece = view[start : start + DECODE_BYTES]
                    text = self._step(decoder, piece, final=False)
                    if at_start and text:
                        at_start = False
                        text = text.removeprefix("\ufeff")
                    if text:
                        yield text
        yield self._step(decoder, b"", final=True)

    def _step(
        self, decoder: codecs.IncrementalDecoder, piece: bytes | memoryview, *, final: bool
    ) -> str:
        # A character cut by the previous slice's end waits in the decoder.
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(piece, final=final)
        except UnicodeDecodeError as exc:
            raise not_utf8(exc.object[exc.start], self.bytes_read - pending + exc.start) from None
        self.bytes_read += len(piece)
        return text


class Lines:
    """The lines of a text for :func:`csv.reader` (line breaks ``\\n``,
    ``\\r\\n`` or ``\\r``, kept), counted, and the UTF-8 bytes handed out.
    A record (its lines since :meth:`start_record`) longer than
    ``max_record`` characters raises :class:`RecordTooLong`; the rest of
    the line it stopped in is then skipped, never held."""

    def __init__(self, texts: Iterable[str], max_record: int = MAX_RECORD_CHARS) -> None:
        self._texts = iter(texts)
        self._ready: list[str] = []  # complete lines, last first
        self._tail = ""  # the start of a line whose end has not been read yet
        self._skipping = False
        self._record = 0
        self.max_record = max_record
        self.line_num = 0  # lines handed out or skipped
        self.bytes_out = 0  # their size in UTF-8

    def start_record(self) -> None:
        """The next line starts a record."""
        self._record = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self._ready:
            if self._tail_too_long():
                self._skipping = True
                self._tail = ""
                self.line_num += 1
                raise self._too_long()
            text = next(self._texts, None)
            if text == "":
                continue
            if text is None:
                if not self._tail or self._skipping:
                    raise StopIteration
                self._ready.append(self._tail)
                self._tail = ""
            else:
                self._split(text)
        line = self._ready.pop()
        self.line_num += 1
        self.bytes_out += len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
        self._record += len(line)
        if self._record > self.max_record:
            raise self._too_long()
        return line

    def _split(self, text: str) -> None:
        lines = io.StringIO(self._tail + text, newline="").readlines()
        # The last line goes on in the next text when it has no line break,
        # or ends with \r (whose \n may start the next text).
        last = lines[-1]
        self._tail = lines.pop() if not last.endswith("\n") else ""
        if self._skipping:
            if lines:
                lines.pop(0)  # the end of the skipped line
                self._skipping = False
            elif self._tail.endswith("\r"):
                self._tail = "\r"  # its end, if \n follows: still skipped
            else:
                self._tail = ""
        lines.reverse()
        self._ready = lines

    def _tail_too_long(self) -> bool:
        return not self._skipping and self._record + len(self._tail) > self.max_record

    def _too_long(self) -> RecordTooLong:
        return RecordTooLong(
            f"a record longer than {self.max_record} characters, which no valid row is; "
            "the rest of its line was skipped"
        )
