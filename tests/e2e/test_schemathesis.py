"""Property-based tests of the running API from its own OpenAPI schema.

Schemathesis generates valid and invalid requests for every operation, and
stateful sequences along the links it infers (create an item, then patch it),
authenticated as a real user, and fails on any 5xx, any response that does not
match its declared schema, and any status code the operation does not declare.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import API_URL

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
REPORT = Path(__file__).parent / "schemathesis-report.txt"


def test_no_server_errors_and_no_schema_violations(auth_headers: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{API_URL}/openapi.json",
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: {auth_headers['Authorization']}",
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--seed",
            "20261121",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    REPORT.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]
