"""Fault tests against the running compose stack: workers killed, the broker
restarted, poison jobs. The stack runs with short job timings
(``tests/jobs-fast.env``) so that recovery takes seconds, not minutes."""

from __future__ import annotations

from tests.e2e.conftest import api, auth_headers  # noqa: F401 (fixtures)
