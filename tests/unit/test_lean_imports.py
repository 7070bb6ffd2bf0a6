"""What the api's processes leave out (core.lean_imports, imported first by
gunicorn's configuration): measured in a fresh interpreter each."""

from __future__ import annotations

import json
import subprocess
import sys

LOADED = (
    "import json, sys; {setup}"
    "from api.main import create_app; create_app();"
    "print(json.dumps({{m: m in sys.modules and sys.modules[m] is not None"
    " for m in ('pydantic.v1', 'opentelemetry.sdk.metrics', 'celery', 'kombu')}}))"
)


def loaded(setup: str) -> dict[str, bool]:
    """Which of the modules an app built after ``setup`` has loaded."""
    code = LOADED.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_api_loads_none_of_them() -> None:
    assert loaded("import core.lean_imports;") == dict.fromkeys(
        ("pydantic.v1", "opentelemetry.sdk.metrics", "celery", "kombu"), False
    )


def test_without_it_fastapi_and_redis_load_them() -> None:
    # What the module keeps out, FastAPI and redis-py load by themselves.
    found = loaded("")
    assert found["pydantic.v1"] is True
    assert found["opentelemetry.sdk.metrics"] is True
