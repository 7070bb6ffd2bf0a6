"""Job kinds: what a feature declares so that workers run its jobs.

A feature lists its kinds (``JOB_KINDS`` in its ``jobs`` module), and
:mod:`core.jobs_index` assembles them with :func:`table`; the engine never
names a feature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.jobs.context import JobContext, Output

# Does the job's work in the session it is given (the run's transaction,
# which also records the outcome) and returns what the job produced.
Handler = Callable[[AsyncSession, JobContext], Awaitable[Output]]
# Runs last in the run's transaction, once its outcome is recorded: a
# check that holds a lock until the commit, a moment later. May raise
# RunAgain.
Settle = Callable[[AsyncSession, JobContext, Output], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    """A kind of job and the handler that runs it.

    ``debug`` kinds run only outside production, and no API route creates
    them. ``debug_handler``, when given, replaces ``handler`` outside
    production (a ping names the process that ran it). ``makes_file``: its
    runs write a result file, so a job of this kind is refused while its
    owner's stored files are at MAX_STORED_FILE_BYTES_PER_USER. ``settle``,
    when given, runs after the outcome is recorded, just before the commit
    (see :data:`Settle`)."""

    name: str
    handler: Handler
    debug: bool = False
    debug_handler: Handler | None = None
    makes_file: bool = False
    settle: Settle | None = None


def table(*groups: Iterable[JobKind], environment: str) -> Mapping[str, JobKind]:
    """The kinds a worker in ``environment`` runs, by name. A name declared
    twice is refused (:class:`ValueError`)."""
    production = environment == "production"
    declared: set[str] = set()
    kinds: dict[str, JobKind] = {}
    for kind in (kind for group in groups for kind in group):
        if kind.name in declared:
            raise ValueError(f"job kind {kind.name!r} is declared twice")
        declared.add(kind.name)
        if production and kind.debug:
            continue
        if not production and kind.debug_handler is not None:
            kind = dataclasses.replace(kind, handler=kind.debug_handler)
        kinds[kind.name] = kind
    return kinds
