"""What a node's store holds, in counts only (purpose ``status`` reads no field)."""

from __future__ import annotations

from functools import partial

from fedrisk.node.access import SiteAccess
from fedrisk.node.store import Store, StoreCounts

TABLES = ("batches", "settlements", "lines", "labels")


def store_counts(access: SiteAccess) -> StoreCounts:
    """Batches, settlements, fee lines and labels in the store; each count is an audited read."""
    with Store.open(access.home.store, read_only=True) as store:
        counts = [
            access.read(table, [], partial(store.count_rows, table), rows=int) for table in TABLES
        ]
    return StoreCounts(*counts)
