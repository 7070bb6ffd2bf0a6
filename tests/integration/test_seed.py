"""The first superuser's seed (``python -m core.users.seed``, also run by
``python -m migrate``): idempotent for its own superuser, and a loud refusal
when someone else registered the email first."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.errors import Conflict
from core.models import User
from core.users.service import ensure_superuser
from tests.integration.conftest import PASSWORD

REFUSAL = (
    "FIRST_SUPERUSER_EMAIL {email} belongs to an account that is not a superuser; "
    "refusing (promote it by hand or choose another email)"
)


async def test_an_existing_superuser_is_left_as_it_is(session: AsyncSession) -> None:
    assert await ensure_superuser(session, email="Root@Example.com", password=PASSWORD) is True
    assert await ensure_superuser(session, email="root@example.com", password="other") is False
    [user] = (await session.scalars(select(User).where(User.email == "root@example.com"))).all()
    assert user.is_superuser


async def test_an_email_taken_by_a_plain_account_is_refused(session: AsyncSession) -> None:
    user = User(email="first-comer@example.com", hashed_password="theirs")
    session.add(user)
    await session.flush()
    with pytest.raises(Conflict, match="not a superuser"):
        await ensure_superuser(session, email="First-Comer@Example.com", password=PASSWORD)
    await session.refresh(user)
    assert user.is_superuser is False
    assert user.hashed_password == "theirs"


async def run(
    module: str, email: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module`` with the first superuser's variables set."""
    env = {**os.environ, "FIRST_SUPERUSER_EMAIL": email, "FIRST_SUPERUSER_PASSWORD": password}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", module],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", ["core.users.seed", "migrate"])
async def test_the_entry_points_refuse_an_email_taken_by_a_plain_account(
    committed: tuple[async_sessionmaker[AsyncSession], User], module: str
) -> None:
    """Exit 1 with one line naming the problem, no traceback, and the account
    untouched. (A different case of the email is the same account.)"""
    maker, user = committed
    email = user.email.upper()
    done = await run(module, email)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    refusals = [line for line in lines if "FIRST_SUPERUSER_EMAIL" in line]
    assert refusals == [f"ERROR [seed] {REFUSAL.format(email=email)}"], done.stderr
    assert lines[-1] == refusals[0]
    assert "Traceback" not in done.stderr + done.stdout
    async with maker() as session:
        stored = await session.get(User, user.id)
    assert stored is not None
    assert (stored.is_superuser, stored.hashed_password) == (False, "x")


async def test_the_seed_creates_its_superuser_once(
    committed: tuple[async_sessionmaker[AsyncSession], User],
) -> None:
    maker, _ = committed
    email = f"seed-{uuid.uuid4().hex[:12]}@example.com"
    try:
        first = await run("core.users.seed", email)
        second = await run("core.users.seed", email)
        assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
        assert f"superuser {email} created" in first.stderr
        assert f"superuser {email} already exists" in second.stderr
        async with maker() as session:
            stored = await session.scalar(select(User).where(User.email == email))
        assert stored is not None
        assert stored.is_superuser
    finally:
        async with maker() as session, transaction(session):
            await session.execute(delete(User).where(User.email == email))


async def test_the_seed_refuses_a_weak_password() -> None:
    """The first superuser's password meets the rules registration applies."""
    done = await run("core.users.seed", "root-admin@example.com", "password123")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "ERROR [seed] FIRST_SUPERUSER_PASSWORD refused: This password is one of the"
    ), done.stderr
