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

import httpx

from tests.e2e.conftest import API_URL, new_user_headers, reset_throttles

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
REPORTS = Path(__file__).parent
LOGOUT = "/api/v1/auth/logout"


def schemathesis(headers: dict[str, str], *selection: str, report: str) -> None:
    """Run schemathesis over the operations ``selection`` picks, as the user
    ``headers`` authenticate; fail on any finding."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{API_URL}/openapi.json",
            *selection,
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: {headers['Authorization']}",
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
    (REPORTS / report).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]


def test_no_server_errors_and_no_schema_violations(auth_headers: dict[str, str]) -> None:
    # Logout ends the session the token belongs to: every later request of
    # the run would only meet 401. It has a run of its own below.
    try:
        schemathesis(auth_headers, "--exclude-path", LOGOUT, report="schemathesis-report.txt")
    finally:
        reset_throttles()


def test_logout_conforms_too(api: httpx.Client) -> None:
    headers = new_user_headers(api, "logout")
    schemathesis(headers, "--include-path", LOGOUT, report="schemathesis-logout-report.txt")
    # The run logged the user out: the token is refused now.
    assert api.get("/api/v1/users/me", headers=headers).status_code == 401
