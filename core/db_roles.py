"""Least privilege in the database.

The api, worker and scheduler connect as DATABASE_URL's role (the app role):
it reads and writes the application's tables and owns nothing. Migrations
connect as the role that owns the tables (DATABASE_OWNER_URL) and, after
every upgrade, make sure the app role exists with DATABASE_URL's password and
has its rights on every table, the ones later migrations add included
(:func:`provision`). :func:`role_problems` says what a connected role can do
beyond that; ``python -m migrate`` checks the app role with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass

from sqlalchemy import Connection, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import sqlstate
from core.settings import DatabaseSettings

log = logging.getLogger("migrate")

# What the app role may do with every table of the schema, and with its
# sequences. alembic_version is the owner's to write; the app only reads it.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"
# Members of these read and write the server's files and run programs on it
# (COPY ... TO PROGRAM): with them, an injection becomes a shell on the host.
SERVER_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")
INSUFFICIENT_PRIVILEGE = "42501"
SCRAM_ITERATIONS = 4096


class RoleSetupError(RuntimeError):
    """The owner could not create the app role: it must be created by hand."""


@dataclass(frozen=True)
class AppRole:
    """The role DATABASE_URL connects as, and its password."""

    name: str
    password: str | None


def app_role(settings: DatabaseSettings) -> AppRole | None:
    """DATABASE_URL's role, or None when it is the owner's own (one URL for
    everything: nothing to create or grant)."""
    app = make_url(settings.url.url)
    owner = make_url(settings.as_owner().direct_url.url)
    if not app.username or app.username == owner.username:
        return None
    return AppRole(app.username, app.password)


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for ``password``, so that
    the password itself never travels in a statement (or lands in a server
    log). Postgres SASLprep-normalises non-ASCII passwords first: those are
    sent as they are and hashed by the server."""
    if not password.isascii():
        return password
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _execute(connection: Connection, template: str, *args: str) -> None:
    """Run a statement built by the server's format(): %I quotes an
    identifier, %L a literal; no bind parameters (DDL takes none)."""
    params = {f"a{i}": arg for i, arg in enumerate(args)}
    placeholders = "".join(f", CAST(:a{i} AS text)" for i in range(len(args)))
    query = text(f"SELECT format(:t{placeholders})")
    statement = connection.scalar(query, {"t": template, **params})
    connection.exec_driver_sql(str(statement))


def _try(connection: Connection, template: str, *args: str) -> bool:
    """:func:`_execute` in a savepoint; False (and nothing changed) when the
    owner lacks the privilege for it."""
    try:
        with connection.begin_nested():
            _execute(connection, template, *args)
    except DBAPIError as exc:
        if sqlstate(exc) != INSUFFICIENT_PRIVILEGE:
            raise
        return False
    return True


def _ensure_role(connection: Connection, role: AppRole) -> None:
    """Create the role, or set its password to DATABASE_URL's (a rotated
    password takes effect at the next migration)."""
    exists = connection.scalar(
        text("SELECT count(*) FROM pg_roles WHERE rolname = :name"), {"name": role.name}
    )
    if not exists:
        template = "CREATE ROLE %I WITH LOGIN" + (" PASSWORD %L" if role.password else "")
        args = (role.name, scram_verifier(role.password)) if role.password else (role.name,)
        if not _try(connection, template, *args):
            raise RoleSetupError(
                f"role {role.name!r} (DATABASE_URL's) does not exist and the owner may not "
                f"create it; create it once as an administrator: CREATE ROLE {role.name} "
                "LOGIN PASSWORD '...' (README, Database roles)"
            )
        log.info("created the app role %s", role.name)
    elif role.password and not _try(
        connection, "ALTER ROLE %I WITH LOGIN PASSWORD %L", role.name, scram_verifier(role.password)
    ):
        log.warning("the owner may not set the password of role %s; it keeps its own", role.name)


def _grant(connection: Connection, name: str) -> None:
    """The app role's rights on the current schema: read and write every
    table and sequence, now and (default privileges) those the owner creates
    later; read-only on alembic_version; never CREATE."""
    database = str(connection.scalar(text("SELECT current_database()")))
    schema = str(connection.scalar(text("SELECT current_schema()")))
    can = connection.execute(
        text(
            "SELECT has_database_privilege(:r, current_database(), 'CONNECT'),"
            " has_schema_privilege(:r, current_schema(), 'USAGE'),"
            " has_schema_privilege(:r, current_schema(), 'CREATE'),"
            " has_database_privilege(:r, current_database(), 'CREATE'),"
            " to_regclass('alembic_version') IS NOT NULL"
        ),
        {"r": name},
    ).one()
    # Granted to PUBLIC by default; only granted when missing, since a
    # managed database's owner may not own the database or the schema.
    if not can[0]:
        _execute(connection, "GRANT CONNECT ON DATABASE %I TO %I", database, name)
    if not can[1]:
        _execute(connection, "GRANT USAGE ON SCHEMA %I TO %I", schema, name)
    for template in (
        f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA %I TO %I",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA %I TO %I",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT {TABLE_PRIVILEGES} ON TABLES TO %I",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO %I",
    ):
        _execute(connection, template, schema, name)
    if can[4]:
        _execute(connection, "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM %I", name)
    # Postgres before 15 lets PUBLIC create in the public schema.
    for held, kind, target in ((can[2], "SCHEMA", schema), (can[3], "DATABASE", database)):
        revoke = f"REVOKE CREATE ON {kind} %I FROM PUBLIC, %I"
        if held and not _try(connection, revoke, target, name):
            log.warning("the owner may not revoke CREATE on %s %s from %s", kind, target, name)


def _default_statement_timeout(connection: Connection, name: str, seconds: float) -> None:
    """The app role's own statement_timeout (DB_STATEMENT_TIMEOUT_SECONDS).
    A direct connection sets it at start-up, but a transaction pooler
    (PgBouncer) refuses that start-up parameter, and only transactions get
    ``SET LOCAL``: autocommit reads through the pooler fall back to this.
    Jobs raise it per transaction (JOB_STATEMENT_TIMEOUT_SECONDS)."""
    milliseconds = str(max(1, round(seconds * 1000)))
    template = "ALTER ROLE %I SET statement_timeout = %L"
    if not _try(connection, template, name, milliseconds):
        log.warning("the owner may not set the default statement_timeout of role %s", name)


def provision(connection: Connection, settings: DatabaseSettings) -> None:
    """As the owner, in the migrations' transaction: the app role exists,
    with DATABASE_URL's password, its rights and its default statement
    timeout. Idempotent; nothing to do when DATABASE_URL is the owner's."""
    role = app_role(settings)
    if role is not None:
        _ensure_role(connection, role)
        _grant(connection, role.name)
        _default_statement_timeout(connection, role.name, settings.db_statement_timeout_seconds)


_ROLE_FACTS = text(
    "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,"
    " ARRAY(SELECT s FROM unnest(CAST(:server_roles AS text[])) AS s"
    "       WHERE pg_has_role(current_user, s, 'MEMBER')),"
    " (SELECT count(*) FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
    "   AND pg_has_role(current_user, c.relowner, 'MEMBER')),"
    " has_schema_privilege(current_schema(), 'CREATE'),"
    " has_database_privilege(current_database(), 'CREATE')"
    " FROM pg_roles r WHERE r.rolname = current_user"
)


async def role_problems(connection: AsyncConnection) -> tuple[list[str], list[str]]:
    """What the connected role may do beyond reading and writing rows:
    (dangerous, broader). Dangerous: a superuser or a member of a server
    files / programs role (COPY ... TO PROGRAM). Broader: owns objects of the
    schema (so may ALTER or DROP them), may CREATE there or in the database,
    or may create roles or databases."""
    facts = (await connection.execute(_ROLE_FACTS, {"server_roles": list(SERVER_ROLES)})).one()
    superuser, createrole, createdb, bypassrls, server_roles, owned, on_schema, on_db = facts
    dangerous = ["is a superuser"] if superuser else []
    dangerous += [f"is a member of {r}" for r in server_roles if not superuser]
    broader = [f"owns {owned} objects of the schema"] if owned else []
    flags = {
        "CREATEROLE": createrole,
        "CREATEDB": createdb,
        "BYPASSRLS": bypassrls,
        "CREATE on the schema": on_schema,
        "CREATE on the database": on_db,
    }
    if not superuser:
        broader += [f"has {flag}" for flag, held in flags.items() if held]
    return dangerous, broader
