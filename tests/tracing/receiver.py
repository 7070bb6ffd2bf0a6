"""A tiny OTLP/HTTP trace receiver for the tracing tests (tests/tracing).

POST /v1/traces takes what an OTLP/HTTP exporter sends (an
ExportTraceServiceRequest protobuf, gzipped or not) and keeps its spans, the
latest MAX_SPANS of them; GET /spans answers them as JSON (only those of one
trace with ``?trace_id=``); GET /health answers 200. Run in the app image
(which has opentelemetry-proto) as tests/tracing/compose.yml's ``otlp``
service: ``python receiver.py [port]`` (default 4318).
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

MAX_SPANS = 50_000
MAX_BODY_BYTES = 16 * 1024 * 1024

_spans: deque[dict[str, Any]] = deque(maxlen=MAX_SPANS)
_lock = threading.Lock()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: _value(pair.value) for pair in items}


def decode(body: bytes) -> list[dict[str, Any]]:
    """The spans of one export request, flattened to JSON-ready dicts."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "service": resource.get("service.name"),
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "attributes": _attributes(span.attributes),
                        "links": [
                            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                            for link in span.links
                        ],
                        "status": span.status.code,
                    }
                )
    return spans


class Handler(BaseHTTPRequestHandler):
    """OTLP/HTTP in, JSON out."""

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/v1/traces":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        spans = decode(body)
        with _lock:
            _spans.extend(spans)
        self._answer(ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self._answer(b"ok", "text/plain")
            return
        if url.path != "/spans":
            self.send_error(404)
            return
        wanted = parse_qs(url.query).get("trace_id")
        with _lock:
            spans = [s for s in _spans if not wanted or s["trace_id"] in wanted]
        self._answer(json.dumps(spans).encode(), "application/json")

    def _answer(self, body: bytes, media_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exporters post every fraction of a second."""


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"OTLP/HTTP receiver on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
