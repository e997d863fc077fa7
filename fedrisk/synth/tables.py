"""The generated rows before they become text: settlements and fee lines as integer arrays.

Settlements never change count after the clean bulk is drawn (incidents rewrite clean rows in
place); fee lines are appended and killed. Strings (diagnosis lists, DRG codes) are interned in
a ``Strings`` table and referred to by index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from fedrisk.synth.clock import I64, MINUTE, Mask

VISITS: Final = ("outpatient", "inpatient", "pharmacy")
OUTPATIENT: Final = 0
INPATIENT: Final = 1
PHARMACY: Final = 2
NO_DOCTOR: Final = -1  # empty doctor_id
UNKNOWN_DOCTOR: Final = -2  # doctor_id ``UNKNOWN``
NO_TIME: Final = -1
SETTLE_DELAY: Final = 20 * MINUTE  # outpatient and pharmacy visits settle 20 minutes in


class Strings:
    """An interning table: each distinct string gets a stable index (insertion order)."""

    def __init__(self, first: str = "") -> None:
        self.values: list[str] = [first]
        self._index: dict[str, int] = {first: 0}

    def __call__(self, value: str) -> int:
        """The index of ``value``, adding it when new."""
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found

    def array(self) -> np.ndarray:
        """The strings as an object array, for fancy indexing."""
        return np.array(self.values, dtype=object)


@dataclass
class Settlements:
    """One row per settlement of all sites (see the module docstring).

    ``number`` is the settlement number within its site (``S%08d``); ``template`` the visit kind
    of the clean bulk (-1 once an incident rewrote the row).
    """

    site: I64
    visit: I64
    patient: I64
    admit: I64
    discharge: I64
    dx: I64
    drg: I64
    doctor: I64
    pharmacist: I64
    number: I64
    template: I64

    def __len__(self) -> int:
        return len(self.site)

    def settle(self) -> I64:
        """``settle_time``: the discharge for stays, 20 minutes after admission otherwise."""
        return np.where(self.visit == INPATIENT, self.discharge, self.admit + SETTLE_DELAY)

    @staticmethod
    def concat(parts: list[Settlements]) -> Settlements:
        """Rows of several parts, in order."""
        names = Settlements.__dataclass_fields__
        return Settlements(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


LINE_FIELDS: Final = ("sett", "line_no", "item", "trace", "qty", "price", "amount", "days", "order")


@dataclass
class Lines:
    """Fee lines: a bulk part sorted by settlement row, plus lines appended later.

    Columns: ``sett`` (settlement row), ``line_no``, ``item`` (catalog item index), ``trace``
    (serial of the traceability code, -1 = none), ``qty``, ``price`` and ``amount`` (cents),
    ``days`` (days of supply, -1 = empty), ``order`` (order time); ``alive`` is False for lines
    removed by a rewrite.
    """

    cols: dict[str, I64]
    alive: Mask
    _extra: dict[str, list[int]] = field(default_factory=lambda: {f: [] for f in LINE_FIELDS})
    _extra_alive: list[bool] = field(default_factory=list)
    _extra_of: dict[int, list[int]] = field(default_factory=dict)
    next_trace: int = 0

    @property
    def bulk_size(self) -> int:
        """Lines of the bulk part."""
        return len(self.alive)

    def __len__(self) -> int:
        return self.bulk_size + len(self._extra_alive)

    def of(self, row: int) -> list[int]:
        """Live line indices of a settlement row (bulk indices first, then appended ones)."""
        sett = self.cols["sett"]
        lo, hi = np.searchsorted(sett, row, side="left"), np.searchsorted(sett, row, "right")
        found = [int(i) for i in range(int(lo), int(hi)) if self.alive[i]]
        extra = self._extra_of.get(row, [])
        return found + [self.bulk_size + j for j in extra if self._extra_alive[j]]

    def get(self, line: int, name: str) -> int:
        """One value of one line."""
        if line < self.bulk_size:
            return int(self.cols[name][line])
        return self._extra[name][line - self.bulk_size]

    def set(self, line: int, name: str, value: int) -> None:
        """Change one value of one line."""
        if line < self.bulk_size:
            self.cols[name][line] = value
        else:
            self._extra[name][line - self.bulk_size] = value

    def kill(self, row: int) -> None:
        """Remove every line of a settlement row."""
        for line in self.of(row):
            if line < self.bulk_size:
                self.alive[line] = False
            else:
                self._extra_alive[line - self.bulk_size] = False

    def add(
        self,
        row: int,
        item: int,
        qty: int,
        price: int,
        order: int,
        days: int = -1,
        trace: int | None = None,
        drug: bool = False,
    ) -> int:
        """Append a line to a settlement row; drugs get a new traceability serial by default."""
        if trace is None:
            trace = self.new_trace() if drug else -1
        line_no = 1 + max((self.get(i, "line_no") for i in self.of(row)), default=0)
        values = (row, line_no, item, trace, qty, price, qty * price, days, order)
        for name, value in zip(LINE_FIELDS, values, strict=True):
            self._extra[name].append(int(value))
        self._extra_alive.append(True)
        self._extra_of.setdefault(row, []).append(len(self._extra_alive) - 1)
        return len(self) - 1

    def new_trace(self) -> int:
        """A traceability serial never used before."""
        self.next_trace += 1
        return self.next_trace - 1

    def frozen(self) -> tuple[dict[str, I64], Mask]:
        """All lines as arrays (bulk then appended) and their alive mask."""
        cols = {
            name: np.concatenate([self.cols[name], np.array(self._extra[name], dtype=np.int64)])
            for name in LINE_FIELDS
        }
        alive = np.concatenate([self.alive, np.array(self._extra_alive, dtype=np.bool_)])
        return cols, alive
