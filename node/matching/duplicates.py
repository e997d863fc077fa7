"""``duplicate_trace_code`` across sites: one drug box (traceability code) settled at two sites.

Key: the trace code, in one window for all time (a box is settled once, ever; ``--window``
only narrows which of this node's settlements take part). No values are encrypted: a token
held by another node *is* the finding. Duplicates within this site are the single-site rule's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found, Int64s, Key, empty_values, store_rows
from fedrisk.protos.matching import ALL_WINDOWS

NAME = "duplicate_trace_code"
READS = {
    "lines": ["settlement_id", "line_no", "item_code", "trace_code"],
    "settlements": ["settlement_id", "settle_time"],
}
_SQL = """
SELECT l.trace_code,
    list(l.settlement_id ORDER BY l.settlement_id, l.line_no),
    list(l.line_no ORDER BY l.settlement_id, l.line_no),
    list(l.item_code ORDER BY l.settlement_id, l.line_no)
FROM lines l JOIN settlements s USING (settlement_id)
WHERE l.trace_code IS NOT NULL AND ($window = 'all' OR strftime(s.settle_time, '%Y-%m') = $window)
GROUP BY l.trace_code ORDER BY l.trace_code
"""


class Duplicates:
    name = NAME
    slots_per_key = 1

    def __init__(self, access: SiteAccess, window: str) -> None:
        rows = store_rows(access, READS, _SQL.replace("$window", "?"), [window, window])
        self._codes = [str(row[0]) for row in rows]
        self._lines = [list(zip(*row[1:], strict=True)) for row in rows]

    def keys(self) -> Sequence[Key]:
        return [(ALL_WINDOWS, (code,)) for code in self._codes]

    def values(self, entries: Int64s, leaders: np.ndarray) -> Int64s:
        return empty_values(len(entries), 0, 1)

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        found = []
        for entry, held_by in zip(entries.tolist(), sites.tolist(), strict=True):
            for settlement, line_no, item in self._lines[entry]:
                evidence = {
                    "line_no": line_no,
                    "item_code": item,
                    "trace_code": self._codes[entry],
                    "restriction": "a box is settled once",
                    "sites": held_by,
                }
                found.append(Found(settlement, evidence))
        return found

    def local(self, entries: Int64s) -> list[Found]:
        return []
