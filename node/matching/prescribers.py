"""``prescriber_outlier``: the federation's mean per prescribing doctor, then local decisions.

Key: the drug code, in the window of the month of ``order_time``. Values: this node's Σ of its
doctors' amounts of that drug that month (fen) and how many of its doctors prescribed it. The
coordinator sums them without a mask: the sum *is* the statistic (the peer baseline). Each node
reads only the drug-months it prescribed, and flags its own doctors whose amount × doctors >
factor × total — exactly "above factor × the mean", without rounding.

A doctor is counted once per site: a doctor who prescribes one drug at two sites in one month
counts as two prescribers there (docs/privacy.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found, Int64s, Key, store_rows

NAME = "prescriber_outlier"
READS = {
    "settlements": ["settlement_id", "doctor_pseudonym", "doctor_status"],
    "lines": ["settlement_id", "item_type", "item_code", "amount", "order_time"],
}
_SQL = """
SELECT l.item_code, strftime(l.order_time, '%Y-%m') AS month, s.doctor_pseudonym,
    CAST(sum(l.amount) * 100 AS BIGINT), list(DISTINCT l.settlement_id ORDER BY l.settlement_id)
FROM lines l JOIN settlements s USING (settlement_id)
WHERE l.item_type = 'drug' AND s.doctor_status = 'ok'
    AND l.item_code IN (SELECT code FROM kb_drugs)
    AND (? = 'all' OR strftime(l.order_time, '%Y-%m') = ?)
GROUP BY 1, 2, 3
ORDER BY l.item_code, month, s.doctor_pseudonym
"""


class Prescribers:
    name = NAME
    slots_per_key = 1

    def __init__(self, access: SiteAccess, window: str, kb: KnowledgeBase, pack: RulePack) -> None:
        self._factor = pack.rules[NAME].number("factor")
        codes = pa.table({"code": sorted(kb.drugs)})
        rows = store_rows(access, READS, _SQL, [window, window], {"kb_drugs": codes})
        doctors: dict[Key, list[tuple[int, list[str]]]] = defaultdict(list)
        for code, month, _, fen, settlements in rows:
            doctors[(month, (code,))].append((int(fen), settlements))
        self._keys = sorted(doctors)
        self._doctors = [doctors[key] for key in self._keys]

    def keys(self) -> Sequence[Key]:
        return self._keys

    def values(self, entries: Int64s, leaders: np.ndarray) -> Int64s:
        total = [sum(fen for fen, _ in self._doctors[e]) for e in entries.tolist()]
        count = [len(self._doctors[e]) for e in entries.tolist()]
        return np.array([total, count], np.int64).T.reshape(-1, 2, 1)

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        assert outcome is not None
        found: list[Found] = []
        for row, entry in enumerate(entries.tolist()):
            total, count = int(outcome[row, 0, 0]), int(outcome[row, 1, 0])
            month, (code,) = self._keys[entry]
            for fen, settlements in self._doctors[entry]:
                if fen * count > self._factor * total:
                    evidence = {
                        "item_code": code,
                        "month": month,
                        "doctor_amount": str(Decimal(fen) / 100),
                        "federation_mean": str(round(Decimal(total) / count / 100, 2)),
                        "factor": str(self._factor),
                        "prescribing_doctors": count,
                        "sites": int(sites[row]),
                    }
                    found.extend(Found(s, evidence) for s in settlements)
        return found

    def local(self, entries: Int64s) -> list[Found]:
        return []  # every drug-month has slots: its mean is the federation's
