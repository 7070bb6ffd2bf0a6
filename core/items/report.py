"""What an import reports: its counts as it goes, and the report its owner
downloads (the first row errors, and the rows skipped for the items quota)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.items.csvfile import Batch

# The import report keeps this many row errors; the counts cover all of them.
MAX_REPORTED_ERRORS = 1000


@dataclass
class ImportReport:
    """What an import did: its counts, and the first MAX_REPORTED_ERRORS row
    errors (the counts cover all). Valid rows of new items past the owner's
    ``max_items`` are skipped too, and summed up in one entry (how many, the
    first one's line), not listed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    max_items: int | None = None
    over_quota: int = 0
    first_over_quota: int | None = None

    def add(
        self, batch: Batch, *, created: int, updated: int, over_quota: Sequence[int] = ()
    ) -> None:
        """Count a batch, of whose valid rows ``created`` were new and
        ``updated`` changed an item, and those at indexes ``over_quota`` were
        not stored (the owner has ``max_items``); the others changed nothing."""
        self.rows += batch.rows
        for line, column, reason in batch.rejected:
            self.skipped += 1
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append({"line": line, "column": column, "reason": reason})
        if over_quota:
            self.skipped += len(over_quota)
            self.over_quota += len(over_quota)
            if self.first_over_quota is None:
                self.first_over_quota = batch.lines[over_quota[0]]
        self.created += created
        self.updated += updated
        self.unchanged += len(batch.records) - created - updated - len(over_quota)

    def counts(self) -> dict[str, int]:
        """The counts a job reports as it goes."""
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }

    def result(self) -> dict[str, Any]:
        """The report its owner downloads."""
        return {
            **self.counts(),
            "errors": self.errors,
            "errors_truncated": self.skipped - self.over_quota > len(self.errors),
            "quota_exceeded": self._quota_summary(),
        }

    def _quota_summary(self) -> dict[str, Any] | None:
        if not self.over_quota:
            return None
        return {
            "reason": f"quota_exceeded: MAX_ITEMS_PER_USER ({self.max_items}) reached",
            "skipped": self.over_quota,
            "first_line": self.first_over_quota,
        }
