"""The shared log format: JSON lines or text, with request and job ids."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from api.request_context import incoming_request_id
from core.logging import TEXT_FORMAT, ContextFilter, JsonFormatter, job_id, request_id


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
