"""The shared log format: JSON lines or text, with request and job ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys

import pytest

from api.request_context import incoming_request_id
from core.logging import (
    FLUSH_SECONDS,
    TEXT_FORMAT,
    BatchingStreamHandler,
    ContextFilter,
    JsonFormatter,
    job_id,
    request_id,
)


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("appstack.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    ContextFilter().filter(made)
    return made


def test_json_line_has_the_ids_of_the_context_and_extra_fields() -> None:
    rid, jid = request_id.set("req-1"), job_id.set("job-1")
    try:
        line = JsonFormatter().format(record("hello %s", "world", status=201))
    finally:
        request_id.reset(rid)
        job_id.reset(jid)
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "appstack.test"
    assert entry["request_id"] == "req-1"
    assert entry["job_id"] == "job-1"
    assert entry["status"] == 201
    assert entry["time"].endswith("+00:00")


def test_json_line_without_context_has_no_ids() -> None:
    entry = json.loads(JsonFormatter().format(record()))
    assert "request_id" not in entry
    assert "job_id" not in entry


def test_json_line_carries_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, exc_info=sys.exc_info()
        )
    ContextFilter().filter(made)
    entry = json.loads(JsonFormatter().format(made))
    assert "ValueError: boom" in entry["exception"]


def test_text_line_shows_the_ids() -> None:
    token = request_id.set("req-2")
    try:
        line = logging.Formatter(TEXT_FORMAT).format(record())
    finally:
        request_id.reset(token)
    assert "appstack.test [request_id=req-2]: hello %s" in line


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (b"abc-123", True),
        (b"0f8fad5b-d9cb-469f-a165-70867728950e", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"has space", False),
        (b'quote"d', False),
        (b"new\nline", False),
        (b"", False),
    ],
)
def test_only_a_well_formed_incoming_request_id_is_kept(header: bytes, kept: bool) -> None:
    scope = {"headers": [(b"x-request-id", header)]}
    assert (incoming_request_id(scope) == header.decode()) is kept


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def batching_logger(stream: io.StringIO) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"appstack.test.batching.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler


def test_lines_logged_on_a_loop_are_written_together_within_the_interval() -> None:
    stream = CountingStream()
    logger, handler = batching_logger(stream)

    async def log_then_wait() -> str:
        for n in range(50):
            logger.info("line %d", n)
        queued = stream.getvalue()
        await asyncio.sleep(3 * FLUSH_SECONDS)
        return queued

    assert asyncio.run(log_then_wait()) == ""  # queued, not yet written
    assert stream.getvalue() == "".join(f"INFO line {n}\n" for n in range(50))
    assert stream.writes == 1
    handler.close()


def test_a_warning_writes_everything_before_it_at_once_in_order() -> None:
    stream = CountingStream()
    logger, handler = batching_logger(stream)

    async def log() -> None:
        logger.info("first")
        logger.debug("second")
        logger.warning("third")

    asyncio.run(log())
    assert stream.getvalue() == "INFO first\nDEBUG second\nWARNING third\n"
    assert stream.writes == 1
    handler.close()


def test_lines_logged_outside_a_loop_are_written_at_once() -> None:
    stream = CountingStream()
    logger, handler = batching_logger(stream)
    logger.info("now")
    assert stream.getvalue() == "INFO now\n"
    handler.close()


def test_closing_writes_what_is_queued() -> None:
    stream = CountingStream()
    logger, handler = batching_logger(stream)

    async def log() -> None:
        logger.info("last words")

    asyncio.run(log())
    handler.close()
    assert stream.getvalue() == "INFO last words\n"


def test_a_forked_child_does_not_write_the_parents_lines_again() -> None:
    """Queued lines are written before a fork, once; each process then
    writes its own."""
    code = """
import asyncio, logging, os
from core.logging import configure_logging
configure_logging("INFO", batch=True)
log = logging.getLogger("appstack.fork")
async def main():
    log.info("before the fork")
    pid = os.fork()
    log.info("in the child" if pid == 0 else "in the parent")
    await asyncio.sleep(0.3)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    lines = result.stdout.splitlines()
    for text in ("before the fork", "in the child", "in the parent"):
        assert sum(text in line for line in lines) == 1, lines
    assert "multi-threaded" not in result.stdout + result.stderr
