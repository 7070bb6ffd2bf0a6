"""Imported first by the api's gunicorn configuration: redis-py without the
OpenTelemetry metrics SDK, and no ``pydantic.v1``.

redis-py (``redis.observability``) imports ``opentelemetry.sdk.metrics``
whenever it is installed, for a metrics export of its own that is off unless
a process turns it on; this project never does (its tracing, core.tracing,
uses the trace SDK only). That import adds about 1.5 MB to every api
process. Here redis is imported once with that one import refused; the SDK
stays importable by anything else afterwards.

FastAPI imports ``pydantic.v1`` (2.2 MB in every api process) only to ask
whether a route's model is a Pydantic 1 model, and takes an ImportError as
"no" (as on Python 3.14, where pydantic.v1 cannot load). This project has no
such model, so the api's processes refuse that import: a dependency that
needs ``pydantic.v1`` in the api would fail loudly at its import (then delete
the call of :func:`refuse_pydantic_v1` below).
"""

from __future__ import annotations

import sys

_METRICS_SDK = "opentelemetry.sdk.metrics"


def import_redis_without_metrics_sdk() -> None:
    """Import redis-py's observability modules with ``opentelemetry.sdk.metrics``
    unavailable (they then take it as not installed); a no-op when either is
    imported already."""
    if "redis" in sys.modules or _METRICS_SDK in sys.modules:
        return
    sys.modules[_METRICS_SDK] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        # Imports redis.observability (through its maintenance notifications).
        import redis.asyncio  # noqa: F401
    finally:
        del sys.modules[_METRICS_SDK]


_PYDANTIC_V1 = "pydantic.v1"


def refuse_pydantic_v1() -> None:
    """Make ``import pydantic.v1`` raise ImportError in this process (a no-op
    when it is imported already)."""
    if _PYDANTIC_V1 not in sys.modules:
        sys.modules[_PYDANTIC_V1] = None  # type: ignore[assignment]  # import raises ImportError


import_redis_without_metrics_sdk()
refuse_pydantic_v1()
