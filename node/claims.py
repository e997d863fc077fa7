"""The stored claims as the rule engine and the risk model read them, through the access gate.

Screening, training and (later) PreCheck attach the store the same way: read-only, each table a
view of only the fields the purpose needs, plus the rejects of stored batches (for the
``data_quality`` rule). Every one of these reads is checked by the policy and audited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from fedrisk.models.rules.engine import READS as ENGINE_READS
from fedrisk.models.rules.engine import REJECTS_SCHEMA
from fedrisk.node.access import SiteAccess
from fedrisk.node.csvread import WITHHELD
from fedrisk.node.home import NodeHome
from fedrisk.node.ingest import read_rejects
from fedrisk.node.validate import NO_SUCH_SETTLEMENT

REJECT_FIELDS = ("file", "row", "settlement_id", "field", "reason")


def attach_claims(
    access: SiteAccess,
    db: duckdb.DuckDBPyConnection,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Expose ``settlements``, ``lines`` (the rule fields and ``extra``) and ``rejects`` to
    ``db``."""
    reads = merge_reads(ENGINE_READS, {"batches": ("batch_id",)}, extra or {})
    access.attach_store(db, reads)
    rejects = access.read("rejects", REJECT_FIELDS, lambda: _rejects(access.home, db))
    db.register("rejects", rejects)


def merge_reads(*parts: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The union of several field lists per dataset, each field once, in first-seen order."""
    merged: dict[str, list[str]] = {}
    for part in parts:
        for dataset, fields in part.items():
            known = merged.setdefault(dataset, [])
            known.extend(f for f in fields if f not in known)
    return {dataset: tuple(fields) for dataset, fields in merged.items()}


def _rejects(home: NodeHome, db: duckdb.DuckDBPyConnection) -> pa.Table:
    """Rows refused at ingest that name a settlement, from the rejects of stored batches."""
    rows: dict[str, list[object]] = {name: [] for name in REJECTS_SCHEMA.names}
    for (batch_id,) in db.execute("SELECT batch_id FROM batches ORDER BY batch_id").fetchall():
        path = home.rejects / f"{batch_id}.jsonl"
        if not path.is_file():
            continue
        for reject in read_rejects(path):
            if reject.settlement_id in ("", WITHHELD) or reject.reason == NO_SUCH_SETTLEMENT:
                continue
            values = (
                home.site_id,
                reject.settlement_id,
                reject.file,
                reject.row,
                reject.field,
                reject.reason,
            )
            for name, value in zip(REJECTS_SCHEMA.names, values, strict=True):
                rows[name].append(value)
    return pa.table(rows, schema=REJECTS_SCHEMA)
