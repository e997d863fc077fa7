"""Access to test nodes: what a test does at a node, it does as an operator, audited."""

from __future__ import annotations

from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.home import NodeHome
from fedrisk.node.status import store_counts
from fedrisk.node.store import StoreCounts

TESTER = "pytest"


def operator(home: NodeHome, purpose: str) -> SiteAccess:
    """The test's access to ``home`` in the operator role, for ``purpose``."""
    return SiteAccess.open(home, Principal(TESTER, "operator"), purpose)


def counts(home: NodeHome) -> StoreCounts:
    """What the store of ``home`` holds (an audited ``status`` read)."""
    return store_counts(operator(home, "status"))
