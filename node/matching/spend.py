"""``monthly_pharmacy_spend``: one patient's pharmacy spend over all sites in a calendar month.

Key: the patient's national ID (from the vault), in the window of the month of ``settle_time``.
Value: this node's spend of that patient that month, in fen (exact integers). The group's
leader subtracts ``limit − 1 fen``, so a positive masked sum means Σ ≥ the limit. A patient
seen at this site only is decided here, from this node's own spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from fedrisk.crypto.blindsum import CAP
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found, Int64s, Key, identities, store_rows

NAME = "monthly_pharmacy_spend"
READS = {
    "settlements": [
        "settlement_id",
        "patient_pseudonym",
        "visit_type",
        "settle_time",
        "total_amount",
    ]
}
_SQL = """
SELECT patient_pseudonym, strftime(settle_time, '%Y-%m') AS month,
    CAST(sum(total_amount) * 100 AS BIGINT), list(settlement_id ORDER BY settlement_id)
FROM settlements
WHERE visit_type = 'pharmacy' AND (? = 'all' OR strftime(settle_time, '%Y-%m') = ?)
GROUP BY 1, 2
ORDER BY patient_pseudonym, month
"""


class Spend:
    name = NAME
    slots_per_key = 1

    def __init__(
        self, keys: list[Key], fen: Int64s, settlements: list[list[str]], limit: Decimal
    ) -> None:
        """Rows already read: one key per (patient, month), its spend here in fen and its
        settlements; ``limit`` in yuan."""
        self._limit = limit
        self._limit_fen = int(limit * 100)
        if not 1 <= self._limit_fen <= CAP:
            raise ValueError(f"{NAME}: limit {limit} is out of range")
        self._keys, self._fen, self._settlements = keys, fen, settlements

    @staticmethod
    def load(access: SiteAccess, window: str, pack: RulePack) -> Spend:
        """The job over this node's store (audited reads of the store and the vault)."""
        rows = store_rows(access, READS, _SQL, [window, window])
        patients = identities(access, "patient", (row[0] for row in rows))
        return Spend(
            [(row[1], (patients[row[0]],)) for row in rows],
            np.array([row[2] for row in rows], np.int64),
            [row[3] for row in rows],
            pack.rules[NAME].number("limit"),
        )

    def keys(self) -> Sequence[Key]:
        return self._keys

    def values(self, entries: Int64s, leaders: np.ndarray) -> Int64s:
        own = np.minimum(self._fen[entries], CAP)
        limit = leaders.astype(np.int64) * (self._limit_fen - 1)
        return np.asarray(own - limit, np.int64).reshape(-1, 1, 1)

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        assert outcome is not None
        over = outcome[:, 0, 0] > 0
        return self._found(entries[over], sites[over])

    def local(self, entries: Int64s) -> list[Found]:
        over = self._fen[entries] >= self._limit_fen
        return self._found(entries[over], np.ones(int(over.sum()), np.int64))

    def _found(self, entries: Int64s, sites: Int64s) -> list[Found]:
        found: list[Found] = []
        for entry, held_by in zip(entries.tolist(), sites.tolist(), strict=True):
            evidence = {
                "month": self._keys[entry][0],
                "limit": str(self._limit),
                "sites": held_by,
                "over_limit": True,
            }
            found.extend(Found(s, evidence) for s in self._settlements[entry])
        return found
