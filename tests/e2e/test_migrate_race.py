"""Two migrate containers started together both exit 0; the schema is applied once."""

from __future__ import annotations

import os
import subprocess
import uuid

from tests.e2e.conftest import compose


def psql(database: str, sql: str) -> str:
    user = os.environ.get("POSTGRES_USER", "app")
    done = compose("exec", "-T", "db", "psql", "-U", user, "-d", database, "-tAc", sql, timeout=30)
    return done.stdout.strip()


def test_two_migrations_at_once() -> None:
    user = os.environ.get("POSTGRES_USER", "app")
    password = os.environ.get("POSTGRES_PASSWORD", "app")
    main_db = os.environ.get("POSTGRES_DB", "app")
    database = f"race_{uuid.uuid4().hex[:8]}"
    psql(main_db, f'CREATE DATABASE "{database}"')
    url = f"postgresql://{user}:{password}@db:5432/{database}"
    try:
        runs = [
            subprocess.Popen(
                [
                    "docker",
                    "compose",
                    "run",
                    "--rm",
                    "--no-deps",
                    "-e",
                    f"DATABASE_URL={url}",
                    "-e",
                    f"DATABASE_DIRECT_URL={url}",
                    "migrate",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=180)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        # Exactly one of them ran the upgrade; the other found the schema at head.
        assert sum("Running upgrade" in output for output in outputs) == 1, outputs
        assert psql(database, "SELECT version_num FROM alembic_version") == psql(
            main_db, "SELECT version_num FROM alembic_version"
        )
        assert psql(database, "SELECT count(*) FROM alembic_version") == "1"
    finally:
        psql(main_db, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
