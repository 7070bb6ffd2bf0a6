"""Imported first by the api's gunicorn configuration: redis-py without the
OpenTelemetry metrics SDK.

redis-py (``redis.observability``) imports ``opentelemetry.sdk.metrics``
whenever it is installed, for a metrics export of its own that is off unless
a process turns it on; this project never does (its tracing, core.tracing,
uses the trace SDK only). That import adds about 1.5 MB to every api
process. Here redis is imported once with that one import refused; the SDK
stays importable by anything else afterwards.
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


import_redis_without_metrics_sdk()
