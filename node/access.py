"""The one door to a node's data: the policy is checked before every read or write, and every
attempt — allowed or denied — becomes an entry of the audit log.

Callers declare who they are (:class:`Principal`) and why (the purpose) once, when they open a
:class:`SiteAccess`; each read then names the dataset and the fields it needs. A read that the
policy does not allow raises :class:`AccessDeniedError` before anything is read, and the denial is
logged. Store scans in SQL go through :meth:`SiteAccess.attach_store`, which exposes only the
granted fields as views, so the code behind it cannot see more than it declared.

``tests/test_access.py`` checks by reading the source that the raw readers (CSV exports, store
lookups, vault, rejects files, ``ATTACH`` of the store) are called only through this door.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import duckdb

from fedrisk.models.errors import FedriskError
from fedrisk.node.auditlog import AuditLog, AuditRecord
from fedrisk.node.datasets import DATASETS, expand
from fedrisk.node.home import NodeHome
from fedrisk.node.policy import Action, Policy

T = TypeVar("T")
ACTOR_VARIABLE = "FEDRISK_ACTOR"


class AccessDeniedError(FedriskError):
    """The policy does not allow this read or write; the denial is in the audit log."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a person or service (``actor``) acting in a ``role`` of the policy."""

    actor: str
    role: str

    @staticmethod
    def local(role: str) -> Principal:
        """The user running this process (``$FEDRISK_ACTOR``, else the login name) in ``role``."""
        return Principal(os.environ.get(ACTOR_VARIABLE) or getpass.getuser(), role)


class SiteAccess:
    """Reads and writes of one node's data by one principal for one purpose."""

    def __init__(
        self, home: NodeHome, principal: Principal, purpose: str, policy: Policy, log: AuditLog
    ) -> None:
        self.home = home
        self.principal = principal
        self.purpose = purpose
        self.policy = policy
        self.log = log

    @staticmethod
    def open(
        home: NodeHome, principal: Principal, purpose: str, passphrase: bytes | None = None
    ) -> SiteAccess:
        """Load the node's policy and its key (which signs the log) for this access."""
        identity = home.identity(passphrase)
        log = AuditLog(home.audit, home.site_id, identity)
        return SiteAccess(home, principal, purpose, home.policy(), log)

    def read(
        self,
        dataset: str,
        fields: Sequence[str],
        load: Callable[[], T],
        rows: Callable[[T], int | None] | None = None,
    ) -> T:
        """Check, then ``load()``, then log how many rows were read; returns what it loaded."""
        self._require("read", dataset, fields)
        try:
            result = load()
        except Exception as exc:
            self._record("read", dataset, fields, None, f"failed: {type(exc).__name__}")
            raise
        self._record("read", dataset, fields, (rows or _count)(result), "")
        return result

    def write(self, dataset: str, rows: int, save: Callable[[], T]) -> T:
        """Check and log a write of ``rows`` rows to ``dataset``, then ``save()``."""
        fields = DATASETS[dataset]
        self._require("write", dataset, fields)
        self._record("write", dataset, fields, rows, "")
        return save()

    def allowed_entry(
        self, action: Action, dataset: str, fields: Sequence[str], rows: int | None
    ) -> AuditRecord:
        """Check the policy (a denial is logged and raised) and return the entry of an allowed
        access for the caller to append — in groups, for a service answering many calls a
        second (see node/auditqueue.py)."""
        self._require(action, dataset, fields)
        return self._entry(action, dataset, fields, rows, "allowed", "")

    def refuse(self, action: Action, dataset: str, reason: str) -> int:
        """Log that something was refused for ``reason`` (e.g. an untrusted model); returns the
        entry's index. For refusals that are not the policy's: a bad signature, say."""
        entry = self._entry(action, dataset, DATASETS[dataset], None, "denied", reason)
        return self.log.append([entry]).size - 1

    def require_writes(self, datasets: Sequence[str]) -> None:
        """Fail early (and log) if any of these writes would be denied, before reading input."""
        for dataset in datasets:
            self._require("write", dataset, DATASETS[dataset])

    def attach_store(
        self, db: duckdb.DuckDBPyConnection, reads: Mapping[str, Sequence[str]]
    ) -> None:
        """Attach the store read-only to ``db``; each dataset becomes a view of only ``fields``."""
        for dataset, fields in reads.items():
            self._require("read", dataset, fields)
        path = str(self.home.store).replace("'", "''")
        try:
            db.execute(f"ATTACH '{path}' AS store (READ_ONLY)")
        except duckdb.IOException as exc:
            raise FedriskError(
                f"{self.home.store}: cannot open the store (is an ingest running?): {exc}"
            ) from None
        entries = []
        for dataset, fields in reads.items():
            columns = ", ".join(expand(dataset, fields)) or "NULL AS no_field"
            db.execute(f"CREATE VIEW {dataset} AS SELECT {columns} FROM store.{dataset}")
            # fetchall, not fetchone: a result left open blocks the connection's next query
            ((counted,),) = db.execute(f"SELECT count(*) FROM store.{dataset}").fetchall()
            entries.append(self._entry("read", dataset, fields, int(counted), "allowed", ""))
        self.log.append(entries)  # one commit (two fsyncs) for the whole attach

    def _require(self, action: Action, dataset: str, fields: Sequence[str]) -> None:
        """Raise :class:`AccessDeniedError` (and log the denial) unless the policy allows this."""
        decision = self.policy.decide(
            self.principal.role, self.purpose, action, dataset, list(fields)
        )
        if decision.allowed:
            return
        denial = self._entry(action, dataset, fields, None, "denied", decision.reason)
        head = self.log.append([denial])
        raise AccessDeniedError(
            f"access denied: {decision.reason} (actor {self.principal.actor!r}, policy "
            f"{self.policy.source} version {self.policy.version}); logged as audit entry "
            f"{head.size - 1}"
        )

    def _record(
        self,
        action: Action,
        dataset: str,
        fields: Sequence[str],
        rows: int | None,
        note: str,
    ) -> None:
        self.log.append([self._entry(action, dataset, fields, rows, "allowed", note)])

    def _entry(
        self,
        action: Action,
        dataset: str,
        fields: Sequence[str],
        rows: int | None,
        decision: Literal["allowed", "denied"],
        reason: str,
    ) -> AuditRecord:
        return AuditRecord(
            actor=self.principal.actor,
            role=self.principal.role,
            purpose=self.purpose,
            action=action,
            dataset=dataset,
            fields=tuple(expand(dataset, fields)) if dataset in DATASETS else tuple(fields),
            rows=rows,
            decision=decision,
            reason=reason,
            policy=self.policy.version,
        )


def _count(result: Any) -> int | None:
    """Rows in what a read returned: an Arrow table, a sequence, or unknown."""
    if hasattr(result, "num_rows"):
        return int(result.num_rows)
    if hasattr(result, "__len__"):
        return len(result)
    return None
