"""``fedrisk audit query``: the entries of a node's audit log that match a filter.

Reading the log is itself an access (dataset ``audit``, purpose ``audit``): the query is
checked against the policy and appended to the log after it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fedrisk.node.access import SiteAccess
from fedrisk.node.auditlog import read_entries


@dataclass(frozen=True)
class AuditFilter:
    """Conditions an entry must all meet; ``None`` means any. Times are instants (UTC if naive):
    ``since`` inclusive, ``until`` exclusive."""

    actor: str | None = None
    role: str | None = None
    purpose: str | None = None
    decision: str | None = None
    dataset: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        for name in ("actor", "role", "purpose", "decision", "dataset"):
            wanted = getattr(self, name)
            if wanted is not None and entry.get(name) != wanted:
                return False
        when = str(entry.get("time", ""))
        if self.since is not None and when < _stamp(self.since):
            return False
        return self.until is None or when < _stamp(self.until)


def _stamp(moment: datetime) -> str:
    """The log's own time format, so that string order is time order."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def query_log(access: SiteAccess, where: AuditFilter) -> list[dict[str, Any]]:
    """The matching entries, oldest first (an audited read of the log)."""
    folder = access.home.audit
    return access.read(
        "audit", ["*"], lambda: [e for e in read_entries(folder) if where.matches(e)]
    )
