"""The tracing tests run against the stack started with
tests/tracing/compose.yml: the api and the worker export their traces to the
suite's OTLP receiver, read at OTLP_URL."""

from __future__ import annotations

from tests.e2e.conftest import api  # noqa: F401 (fixture)
