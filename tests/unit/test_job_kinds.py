"""Job kinds: the table a worker runs, and the names users filter on."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.items import jobs as item_jobs
from core.jobs import builtin
from core.jobs.context import JobContext, Output
from core.jobs.kinds import JobKind, table
from core.jobs_index import JobKindName, job_kinds


async def handler(session: AsyncSession, ctx: JobContext) -> Output:
    return Output()


async def other_handler(session: AsyncSession, ctx: JobContext) -> Output:
    return Output()


def test_a_kind_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="job kind 'twice' is declared twice"):
        table([JobKind("twice", handler)], [JobKind("twice", handler)], environment="test")
    # Also when the first is a debug kind production leaves out.
    with pytest.raises(ValueError, match="declared twice"):
        table(
            [JobKind("twice", handler, debug=True), JobKind("twice", handler)],
            environment="production",
        )


def test_debug_kinds_and_handlers_only_outside_production() -> None:
    kinds = [
        JobKind("plain", handler),
        JobKind("chatty", handler, debug_handler=other_handler),
        JobKind("poison", handler, debug=True),
    ]
    production = table(kinds, environment="production")
    assert set(production) == {"plain", "chatty"}
    assert production["chatty"].handler is handler
    elsewhere = table(kinds, environment="development")
    assert set(elsewhere) == {"plain", "chatty", "poison"}
    assert elsewhere["chatty"].handler is other_handler


def test_the_index_lists_the_engine_and_the_features_kinds() -> None:
    assert set(job_kinds("production")) == {"ping", "items.import", "items.export"}
    assert set(job_kinds("test")) == {"ping", "items.import", "items.export", "debug.crash"}
    assert job_kinds("production")["items.import"] is item_jobs.IMPORT
    assert job_kinds("production")["ping"].handler is builtin.ping
    assert job_kinds("test")["ping"].handler is builtin.ping_naming_its_worker


def test_the_kind_filter_names_every_kind_users_create() -> None:
    creatable = {name for name, kind in job_kinds("test").items() if not kind.debug}
    assert {member.value for member in JobKindName} == creatable
