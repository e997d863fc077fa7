"""``pharmacist_multi_site``: one pharmacist settling at two sites within ``window_minutes``.

Time is cut into buckets as wide as the window (W seconds). Key: the pharmacist's licence ID
and a bucket b, in the window of the month in which b starts. A settlement in bucket b takes
part in the keys of b − 1, b and b + 1, so two settlements within W seconds always share a
key, even across a bucket edge. A key has one slot per second s of its bucket, holding 1 when
the node has a settlement within W seconds of s. The leader subtracts 1. A node reads the
slot of each of its own settlements in b: positive means another site within the window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from fedrisk.models.rules.pack import RulePack
from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found, Int64s, Key, identities, in_window, month, store_rows

NAME = "pharmacist_multi_site"
READS = {"settlements": ["settlement_id", "pharmacist_pseudonym", "settle_time"]}
_SQL = """
SELECT pharmacist_pseudonym, epoch_ms(settle_time) // 1000, settlement_id
FROM settlements WHERE pharmacist_pseudonym IS NOT NULL ORDER BY ALL
"""
_EPOCH = datetime(1970, 1, 1)


class Pharmacists:
    name = NAME

    def __init__(self, access: SiteAccess, window: str, pack: RulePack) -> None:
        self._within = pack.rules[NAME].integer("window_minutes") * 60
        self.slots_per_key = max(self._within, 1)
        rows = store_rows(access, READS, _SQL)
        licences = identities(access, "pharmacist", (row[0] for row in rows))
        width = self.slots_per_key
        events: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for pseudonym, second, settlement in rows:
            bucket = int(second) // width
            for b in (bucket - 1, bucket, bucket + 1):
                events[(licences[pseudonym], b)].append((int(second), settlement))
        self._keys: list[Key] = []
        self._events: list[list[tuple[int, str]]] = []
        self._buckets: list[int] = []
        for (licence, bucket), mine in sorted(events.items()):
            m = month(_EPOCH + timedelta(seconds=bucket * width))
            if in_window(window, m):
                self._keys.append((m, (licence, bucket)))
                self._events.append(mine)
                self._buckets.append(bucket)

    def keys(self) -> Sequence[Key]:
        return self._keys

    def values(self, entries: Int64s, leaders: np.ndarray) -> Int64s:
        width = self.slots_per_key
        out = np.zeros((len(entries), 1, width), np.int64)
        for row, entry in enumerate(entries.tolist()):
            seconds = self._buckets[entry] * width + np.arange(width)
            times = np.array([t for t, _ in self._events[entry]], np.int64)
            near = np.abs(seconds[:, None] - times[None, :]) <= self._within
            out[row, 0] = near.any(axis=1).astype(np.int64) - int(leaders[row])
        return out

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        assert outcome is not None
        width, found = self.slots_per_key, []
        for row, entry in enumerate(entries.tolist()):
            start = self._buckets[entry] * width
            for second, settlement in self._events[entry]:
                inside = start <= second < start + width
                if inside and outcome[row, 0, second - start] > 0:
                    evidence = {
                        "window_minutes": self._within // 60,
                        "sites": int(sites[row]),
                        "other_site_within_window": True,
                    }
                    found.append(Found(settlement, evidence))
        return found

    def local(self, entries: Int64s) -> list[Found]:
        return []
