"""What the api's processes leave out (core.lean_imports, imported first by
gunicorn's configuration): measured in a fresh interpreter each."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

LOADED = (
    "import json, sys; {setup}"
    "from api.main import create_app; create_app();"
    "print(json.dumps({{m: m in sys.modules and sys.modules[m] is not None"
    " for m in {names}}}))"
)
# redis-py's cluster and sentinel clients: its two package __init__s import them.
LEFT_OUT = (
    "pydantic.v1",
    "opentelemetry.sdk.metrics",
    "celery",
    "kombu",
    "redis.cluster",
    "redis.asyncio.cluster",
    "redis.sentinel",
    "redis.asyncio.sentinel",
)


def loaded(setup: str) -> dict[str, bool]:
    """Which of the modules an app built after ``setup`` has loaded."""
    code = LOADED.format(setup=setup, names=LEFT_OUT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_api_loads_none_of_them() -> None:
    assert loaded("import core.lean_imports;") == dict.fromkeys(LEFT_OUT, False)


def test_without_it_fastapi_and_redis_load_them() -> None:
    # What the module keeps out, FastAPI and redis-py load by themselves.
    found = loaded("")
    assert found["pydantic.v1"] is True
    assert found["opentelemetry.sdk.metrics"] is True
    assert found["redis.cluster"] is True
    assert found["redis.asyncio.cluster"] is True
    assert found["redis.sentinel"] is True


# A gunicorn worker's start, as far as uvicorn goes: the worker class, then
# uvicorn's Config loading the app with its lifespan (whose module runs
# ``from uvicorn import Config``), protocol and event loop.
SERVED = (
    "import json, sys; {setup}"
    "from api.serving import Worker; from uvicorn.config import Config;"
    "config = Config(app='api.main:app', lifespan='on', **Worker.CONFIG_KWARGS);"
    "config.load(); config.get_loop_factory();"
    "names = ('click', 'uvicorn.main', 'uvicorn.lifespan.on');"
    "print(json.dumps({{m: m in sys.modules for m in names}}))"
)


def served(setup: str) -> dict[str, bool]:
    """Which of the modules a worker's uvicorn set-up after ``setup`` has loaded."""
    code = SERVED.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_an_api_worker_serves_without_uvicorns_command_line() -> None:
    assert served("import core.lean_imports;") == {
        "click": False,
        "uvicorn.main": False,
        "uvicorn.lifespan.on": True,
    }


def test_without_it_the_worker_class_loads_uvicorns_command_line() -> None:
    found = served("")
    assert found["click"] is True
    assert found["uvicorn.main"] is True


def test_the_rest_of_uvicorns_package_loads_when_asked_for() -> None:
    code = (
        "import json, sys; import core.lean_imports; import uvicorn;"
        "from uvicorn.config import Config; from uvicorn.server import Server;"
        "cheap = uvicorn.Config is Config and uvicorn.Server is Server;"
        "cheap = cheap and 'click' not in sys.modules;"
        "version = uvicorn.__version__;"
        "print(json.dumps([cheap, version, callable(uvicorn.run), 'uvicorn.main' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cheap, version, run, cli = json.loads(out.stdout.strip().splitlines()[-1])
    assert cheap is True
    assert version == importlib.metadata.version("uvicorn")
    assert run is True
    assert cli is True


# For each package core.lean_imports sets up: the names it hands out early
# (and the submodules it imports for a name) must be what the real __init__,
# run afterwards, binds.
SAME = """
import importlib, importlib.util, json, sys
import core.lean_imports
cheap = {
    "uvicorn": ("Config", "Server", "config", "server", "lifespan"),
    "redis": ("Redis", "StrictRedis", "asyncio", "client", "exceptions", "backoff"),
    "redis.asyncio": ("Redis", "StrictRedis", "client", "connection", "retry"),
}
early = {p: {n: getattr(sys.modules[p], n) for n in names} for p, names in cheap.items()}
ran = {p: "__version__" in vars(sys.modules[p]) or "__all__" in vars(sys.modules[p]) for p in cheap}
for package in cheap:
    getattr(sys.modules[package], "__all__")  # runs the real __init__
same = {p: all(getattr(sys.modules[p], n) is v for n, v in early[p].items()) for p in cheap}
# A name the __init__ binds that is also a submodule's name is that submodule,
# but for uvicorn's main (the command line's function).
def clash(package, name, value):
    if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is None:
        return False
    return value is not importlib.import_module(f"{package}.{name}")
clashes = sorted(
    f"{p}.{n}" for p in cheap for n, v in list(vars(sys.modules[p]).items()) if clash(p, n, v)
)
print(json.dumps([ran, same, clashes]))
"""


def test_what_it_hands_out_early_is_what_the_packages_bind() -> None:
    out = subprocess.run([sys.executable, "-c", SAME], capture_output=True, text=True, check=True)
    ran, same, clashes = json.loads(out.stdout.strip().splitlines()[-1])
    assert ran == {"uvicorn": False, "redis": False, "redis.asyncio": False}
    assert same == {"uvicorn": True, "redis": True, "redis.asyncio": True}
    assert clashes == ["uvicorn.main"]
