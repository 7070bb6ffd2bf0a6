"""Least privilege: the tests connect as the app role the api uses
(DATABASE_URL); the migrations ran as the owner (the direct URL here) and
granted it its rights. Through PgBouncer too (`make test`'s second run)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import create_engine, sqlstate
from core.db_roles import SERVER_ROLES, app_role, provision, role_problems, scram_verifier
from core.settings import Settings
from migrate.__main__ import check_app_role

INSUFFICIENT_PRIVILEGE = "42501"


def owner_name(settings: Settings) -> str:
    return make_url(settings.db.as_owner().direct_url.url).username or ""


@pytest.fixture
async def owner_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The owner's engine (the migrations' URL)."""
    engine = create_engine(settings.db.as_owner(), application_name="tests", direct=True)
    yield engine
    await engine.dispose()


async def refused(engine: AsyncEngine, statement: str) -> str:
    """The SQLSTATE ``statement`` fails with, run as the app role."""
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as caught:
            await connection.execute(text(statement))
    return sqlstate(caught.value)


def test_the_tests_use_a_role_of_their_own(settings: Settings) -> None:
    role = app_role(settings.db)
    assert role is not None
    assert role.name != owner_name(settings)


async def test_the_app_role_cannot_create_alter_or_drop(engine: AsyncEngine) -> None:
    assert await refused(engine, "CREATE TABLE probe (id int)") == INSUFFICIENT_PRIVILEGE
    assert await refused(engine, "ALTER TABLE items ADD COLUMN probe int") == INSUFFICIENT_PRIVILEGE
    assert await refused(engine, "DROP TABLE items") == INSUFFICIENT_PRIVILEGE
    assert await refused(engine, "TRUNCATE items") == INSUFFICIENT_PRIVILEGE
    assert await refused(engine, "CREATE SCHEMA probe") == INSUFFICIENT_PRIVILEGE
    # The schema version is the owner's to write.
    delete = "DELETE FROM alembic_version"
    assert await refused(engine, delete) == INSUFFICIENT_PRIVILEGE


async def test_the_app_role_cannot_run_programs_or_read_server_files(engine: AsyncEngine) -> None:
    program = "COPY (SELECT 1) TO PROGRAM 'true'"
    assert await refused(engine, program) == INSUFFICIENT_PRIVILEGE
    server_file = "COPY (SELECT 1) TO '/tmp/probe'"
    assert await refused(engine, server_file) == INSUFFICIENT_PRIVILEGE
    read_file = "SELECT pg_read_file('/etc/passwd')"
    assert await refused(engine, read_file) == INSUFFICIENT_PRIVILEGE


async def test_the_app_role_is_no_superuser_and_owns_nothing(connection: AsyncConnection) -> None:
    facts = (
        await connection.execute(
            text(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
                " WHERE rolname = current_user"
            )
        )
    ).one()
    assert tuple(facts) == (False, False, False, False)
    for role in SERVER_ROLES:
        member = text("SELECT pg_has_role(current_user, :r, 'MEMBER')")
        assert await connection.scalar(member, {"r": role}) is False, role
    owned = text(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND pg_has_role(current_user, relowner, 'MEMBER')"
    )
    assert await connection.scalar(owned) == 0
    assert await role_problems(connection) == ([], [])


async def test_the_owner_ran_the_migrations(
    connection: AsyncConnection, settings: Settings
) -> None:
    owners = await connection.scalars(
        text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    )
    assert owners.all() == [owner_name(settings)]


async def test_the_app_role_reads_and_writes_every_table(connection: AsyncConnection) -> None:
    """Every table of the schema, those later migrations add included."""
    rows = await connection.execute(
        text(
            "SELECT tablename,"
            " has_table_privilege(format('public.%I', tablename), 'SELECT'),"
            " has_table_privilege(format('public.%I', tablename), 'INSERT, UPDATE, DELETE')"
            " FROM pg_tables WHERE schemaname = 'public'"
        )
    )
    rights = {name: (read, write) for name, read, write in rows}
    assert rights.pop("alembic_version") == (True, False)
    assert rights
    assert all(r == (True, True) for r in rights.values()), rights
    email = f"priv-{uuid.uuid4().hex[:12]}@example.com"
    await connection.execute(
        text("INSERT INTO users (id, email, hashed_password) VALUES (:id, :e, 'x')"),
        {"id": uuid.uuid4(), "e": email},
    )
    changed = await connection.execute(
        text("UPDATE users SET hashed_password = 'y' WHERE email = :e"), {"e": email}
    )
    assert changed.rowcount == 1
    gone = await connection.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})
    assert gone.rowcount == 1


async def test_a_table_the_owner_adds_later_is_granted(
    engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    """Default privileges: a later migration's table needs no grant of its own."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    async with owner_engine.begin() as owner:
        await owner.execute(text(f"CREATE TABLE {name} (id serial PRIMARY KEY, v text)"))
    try:
        async with engine.begin() as app:
            await app.execute(text(f"INSERT INTO {name} (v) VALUES ('a')"))  # noqa: S608
            assert await app.scalar(text(f"SELECT count(*) FROM {name}")) == 1  # noqa: S608
    finally:
        async with owner_engine.begin() as owner:
            await owner.execute(text(f"DROP TABLE {name}"))


async def test_provisioning_creates_a_missing_role_and_is_idempotent(
    settings: Settings, owner_engine: AsyncEngine
) -> None:
    """In a transaction rolled back: a role that does not exist yet is
    created with the URL's password, and a second run changes nothing."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    url = make_url(settings.db.database_url).set(username=name, password="pw-" + name)
    db = settings.db.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
    async with owner_engine.connect() as owner:
        transaction = await owner.begin()
        try:
            await owner.run_sync(provision, db)
            await owner.run_sync(provision, db)
            facts = (
                await owner.execute(
                    text("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = :n"),
                    {"n": name},
                )
            ).one()
            assert tuple(facts) == (False, True)
            can = "SELECT has_table_privilege(:n, 'items', 'SELECT, INSERT, UPDATE, DELETE')"
            assert await owner.scalar(text(can), {"n": name}) is True
            create = "SELECT has_schema_privilege(:n, 'public', 'CREATE')"
            assert await owner.scalar(text(create), {"n": name}) is False
            # Its own statement limit: autocommit reads through a pooler that
            # refuses the start-up parameter still have one.
            config = "SELECT rolconfig FROM pg_roles WHERE rolname = :n"
            expected = f"statement_timeout={round(db.db_statement_timeout_seconds * 1000)}"
            assert expected in (await owner.scalar(text(config), {"n": name}) or [])
        finally:
            await transaction.rollback()


async def test_the_app_role_has_a_statement_timeout_of_its_own(
    settings: Settings, connection: AsyncConnection
) -> None:
    """What a connection gets when nothing sets statement_timeout (a
    transaction pooler's autocommit reads): the role's default, not none."""
    config = "SELECT rolconfig FROM pg_roles WHERE rolname = current_user"
    expected = f"statement_timeout={round(settings.db.db_statement_timeout_seconds * 1000)}"
    assert expected in (await connection.scalar(text(config)) or [])


async def test_the_owner_is_reported_as_broader(owner_engine: AsyncEngine) -> None:
    async with owner_engine.connect() as owner:
        dangerous, _ = await role_problems(owner)
    # The compose stacks' owner is the db service's superuser.
    assert dangerous == ["is a superuser"]


def test_the_password_travels_as_a_scram_verifier() -> None:
    verifier = scram_verifier("pencil", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert "pencil" not in verifier
    assert scram_verifier("pencil") != scram_verifier("pencil")  # a fresh salt each time
    assert scram_verifier("ünïcode") == "ünïcode"  # the server hashes those itself


def _production(settings: Settings, database_url: str) -> Settings:
    app = settings.app.model_copy(update={"environment": "production"})
    db = settings.db.model_copy(update={"database_url": database_url, "db_pooler": "none"})
    return settings.model_copy(update={"app": app, "db": db})


async def test_production_deploys_with_the_app_role(settings: Settings) -> None:
    direct = make_url(settings.db.as_owner().direct_url.url)
    role = app_role(settings.db)
    assert role is not None
    url = direct.set(username=role.name, password=role.password)
    await check_app_role(_production(settings, url.render_as_string(hide_password=False)))


async def test_production_refuses_a_superuser_as_the_app_role(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The check ``python -m migrate`` runs: the api would connect as the
    owner, a superuser here, so the deploy stops."""
    owner = settings.db.as_owner().direct_url.url
    plain = make_url(owner).set(drivername="postgresql").render_as_string(hide_password=False)
    with pytest.raises(SystemExit) as stopped:
        await check_app_role(_production(settings, plain))
    assert stopped.value.code == 1
    assert "refusing to deploy" in caplog.text
    assert "is a superuser" in caplog.text
