"""Every job kind, gathered from the engine and the features that declare
them. A feature with jobs adds its ``JOB_KINDS`` to ``_GROUPS`` and the
names of the kinds API routes create to :class:`JobKindName`."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from core.items import jobs as items
from core.jobs import builtin
from core.jobs.kinds import JobKind, table

_GROUPS: tuple[Iterable[JobKind], ...] = (builtin.JOB_KINDS, items.JOB_KINDS)


def job_kinds(environment: str) -> Mapping[str, JobKind]:
    """The kinds a worker in ``environment`` runs, by name (debug kinds only
    outside production)."""
    return table(*_GROUPS, environment=environment)


class JobKindName(enum.StrEnum):
    """The kinds users create: what ``GET /api/v1/jobs`` filters on."""

    ping = "ping"
    items_import = "items.import"
    items_export = "items.export"


def _check() -> None:
    declared = {name for name, kind in job_kinds("production").items() if not kind.debug}
    if declared != {member.value for member in JobKindName}:
        raise RuntimeError(f"JobKindName does not list the job kinds {sorted(declared)}")


_check()
