"""Imported first by the api's gunicorn configuration: redis-py without the
OpenTelemetry metrics SDK and without its cluster and sentinel clients, no
``pydantic.v1``, and uvicorn without its command line.

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

Three package ``__init__`` modules import, only to re-export them, modules
an api process never runs, so these packages are set up without running
their ``__init__`` (:func:`lean_package`): uvicorn's (its command line,
``uvicorn.main``: click and the reload and multiprocess supervisors, about
1.5 MB; the worker class needs ``uvicorn.config`` and ``uvicorn.server``)
and redis-py's ``redis`` and ``redis.asyncio`` (the cluster, sentinel and
keyspace-notification clients, about 1.1 MB; the api uses
``redis.asyncio.client`` and ``redis.asyncio.connection``). Their submodules
import as usual, and the few names read from the packages themselves come
from the modules that define them; any other name read from such a package
runs its real ``__init__`` then, so nothing that asks for the rest goes
without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Collection, Mapping

_METRICS_SDK = "opentelemetry.sdk.metrics"


def import_redis_without_metrics_sdk() -> None:
    """Import redis-py's observability modules with ``opentelemetry.sdk.metrics``
    unavailable (they then take it as not installed); a no-op when either is
    imported already."""
    if "redis.asyncio.client" in sys.modules or _METRICS_SDK in sys.modules:
        return
    sys.modules[_METRICS_SDK] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        # Imports redis.observability (through its maintenance notifications).
        import redis.asyncio.client  # noqa: F401
    finally:
        del sys.modules[_METRICS_SDK]


_PYDANTIC_V1 = "pydantic.v1"


def refuse_pydantic_v1() -> None:
    """Make ``import pydantic.v1`` raise ImportError in this process (a no-op
    when it is imported already)."""
    if _PYDANTIC_V1 not in sys.modules:
        sys.modules[_PYDANTIC_V1] = None  # type: ignore[assignment]  # import raises ImportError


def lean_package(name: str, names: Mapping[str, str], full: Collection[str] = ()) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__``.

    A name read from it is, in this order: one of ``names`` (each mapped to
    the module that defines it, imported then), a submodule (imported as
    usual), or else the reason to run the real ``__init__``, once, and take
    the name from it; so is any of ``full`` (names the ``__init__`` binds to
    something else than the submodule of that name). A no-op when the
    package is imported already.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)
    # The real __init__ runs once even if two threads ask at the same moment.
    once = threading.RLock()

    def __getattr__(attr: str) -> object:
        # PEP 562: called only for a name the package does not have yet.
        value: object
        if attr in names:
            value = getattr(importlib.import_module(names[attr]), attr)
        elif (
            attr not in full
            and attr.isidentifier()
            and importlib.util.find_spec(f"{name}.{attr}") is not None
        ):
            value = importlib.import_module(f"{name}.{attr}")
        else:
            with once:
                if package.__dict__.pop("__getattr__", None) is not None:
                    loader.exec_module(package)
            return getattr(package, attr)
        package.__dict__[attr] = value
        return value

    package.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        # As the import system does: a subpackage is its parent's attribute.
        setattr(sys.modules[parent], child, package)


def lean_uvicorn_and_redis() -> None:
    """uvicorn without its command line, redis-py without its cluster and
    sentinel clients (see the module's docstring)."""
    # uvicorn's lifespan module runs ``from uvicorn import Config``; its
    # __init__ binds ``main`` to the command line's function, not the module.
    lean_package(
        "uvicorn",
        {"Config": "uvicorn.config", "Server": "uvicorn.server"},
        full={"main"},
    )
    lean_package("redis", {"Redis": "redis.client", "StrictRedis": "redis.client"})
    client = "redis.asyncio.client"
    lean_package("redis.asyncio", {"Redis": client, "StrictRedis": client})


lean_uvicorn_and_redis()
import_redis_without_metrics_sdk()
refuse_pydantic_v1()
