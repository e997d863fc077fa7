"""``cross_site_over_quantity``: one patient's days of supply of one drug over sites in a window.

The rule (docs/rules.md): a window of ``window_days`` days by admission date, from ≥ 2 sites,
whose Σ days of supply exceeds the drug's ``max_days_supply``; every settlement in it is
flagged. Key: the patient's national ID and the drug code, in the window of a month M. A key
of month M has one slot per day d of M (31 slots), and two values per slot:

- the node's Σ days of supply (in thousandths of a day, exact) admitted in [d, d + window];
- 1 if the node has any such settlement.

The leader subtracts the drug's limit and 1. A slot is a qualifying window when both masked
sums are positive: over the limit *and* from two sites or more. Windows starting on every day,
not only on settlement days, flag the same settlements: a qualifying window lies inside the
one starting at its first settlement. A settlement on day x takes part in the keys of every
month from that of x − window to that of x, so windows starting in the month before are not missed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from fedrisk.crypto.blindsum import CAP
from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found, Int64s, Key, identities, in_window, store_rows

NAME = "cross_site_over_quantity"
ANCHORS = 31  # slots per key: one per day of the month
READS = {
    "settlements": ["settlement_id", "patient_pseudonym", "admit_time"],
    "lines": ["settlement_id", "item_type", "item_code", "quantity", "days_supply"],
}
_SQL = """
SELECT s.patient_pseudonym, l.item_code, CAST(s.admit_time AS DATE), s.settlement_id,
    CAST(sum(coalesce(CAST(l.days_supply AS DECIMAL(18, 3)), l.quantity * d.days_per_unit)
        * 1000) AS BIGINT)
FROM lines l JOIN settlements s USING (settlement_id) JOIN kb_drugs d ON d.code = l.item_code
WHERE l.item_type = 'drug'
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""


class Supply:
    name = NAME
    slots_per_key = ANCHORS

    def __init__(self, access: SiteAccess, window: str, kb: KnowledgeBase, pack: RulePack) -> None:
        self._days = pack.rules[NAME].integer("window_days")
        self._limits = {code: drug.max_days_supply * 1000 for code, drug in kb.drugs.items()}
        table = pa.table(
            {
                "code": list(kb.drugs),
                "days_per_unit": [d.days_per_unit for d in kb.drugs.values()],
            }
        )
        rows = store_rows(access, READS, _SQL, tables={"kb_drugs": table})
        patients = identities(access, "patient", (row[0] for row in rows))
        events: dict[tuple[str, str], list[tuple[date, str, int]]] = defaultdict(list)
        for pseudonym, code, day, settlement, milli in rows:
            events[(patients[pseudonym], code)].append((day, settlement, int(milli)))
        self._keys: list[Key] = []
        self._events: list[list[tuple[date, str, int]]] = []
        for (patient, code), mine in events.items():
            months = {m for day, _, _ in mine for m in _months(day - timedelta(self._days), day)}
            for m in sorted(months):
                first = date(int(m[:4]), int(m[5:]), 1)
                last = first + timedelta(ANCHORS + self._days)
                inside = [e for e in mine if first <= e[0] <= last]
                if inside and in_window(window, m):
                    self._keys.append((m, (patient, code)))
                    self._events.append(inside)

    def keys(self) -> Sequence[Key]:
        return self._keys

    def values(self, entries: Int64s, leaders: np.ndarray) -> Int64s:
        out = np.zeros((len(entries), 2, ANCHORS), np.int64)
        for row, entry in enumerate(entries.tolist()):
            window, (_, code) = self._keys[entry]
            for k, start in self._anchors(window):
                inside = [
                    milli for day, _, milli in self._events[entry] if self._covers(start, day)
                ]
                out[row, 0, k] = min(sum(inside), CAP)
                out[row, 1, k] = int(bool(inside))
            if leaders[row]:
                out[row, 0] -= self._limits[code]
                out[row, 1] -= 1
        return out

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        assert outcome is not None
        found: dict[str, Found] = {}
        for row, entry in enumerate(entries.tolist()):
            window, (_, code) = self._keys[entry]
            for k, start in self._anchors(window):
                if outcome[row, 0, k] <= 0 or outcome[row, 1, k] <= 0:
                    continue
                for day, settlement, _ in self._events[entry]:
                    if self._covers(start, day) and settlement not in found:
                        evidence = {
                            "item_code": code,
                            "window_start": start.isoformat(),
                            "window_days": self._days,
                            "limit_days": self._limits[code] // 1000,
                            "sites": int(sites[row]),
                            "over_limit": True,
                        }
                        found[settlement] = Found(settlement, evidence)
        return list(found.values())

    def local(self, entries: Int64s) -> list[Found]:
        return []  # one site alone is the single-site over_quantity rule's business

    def _anchors(self, window: str) -> list[tuple[int, date]]:
        first = date(int(window[:4]), int(window[5:]), 1)
        days = [(k, first + timedelta(k)) for k in range(ANCHORS)]
        return [(k, d) for k, d in days if d.month == first.month]

    def _covers(self, start: date, day: date) -> bool:
        return start <= day <= start + timedelta(self._days)


def _months(first: date, last: date) -> list[str]:
    """Every month from ``first``'s to ``last``'s."""
    out, year, mon = [], first.year, first.month
    while (year, mon) <= (last.year, last.month):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return out
