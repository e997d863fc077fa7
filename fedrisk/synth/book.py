"""The injection desk: takes clean rows as victims and rewrites them into incidents.

Incidents, edge cases and malformed rows never add settlements: they *rewrite* clean rows of the
right site and visit type (a victim), so site sizes stay as planned. A rewritten settlement gets
a fresh patient (who has no other settlement, so it cannot feed any other cross-settlement rule)
unless the injector says otherwise; at hospitals and clinics it keeps the victim's doctor and
slot, or books another free slot of the doctor's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np

from fedrisk.models.kb import Drug, Service
from fedrisk.synth.clean import GRID_START, SLOT_MINUTES, SLOTS_PER_DAY
from fedrisk.synth.clock import DAY, MINUTE, PERIOD_DAYS, Mask, day_date, unix_day
from fedrisk.synth.tables import INPATIENT, NO_TIME, VISITS
from fedrisk.synth.templates import CONSULT
from fedrisk.synth.world import World

KEEP: Final = -99  # leave the victim's doctor or pharmacist as it is
_LOCAL_REGIONS: Final = 7  # the first REGIONS are local districts


@dataclass(frozen=True)
class Fee:
    """A fee line to write: item code, quantity, and days of supply for drugs.

    ``days`` ``None`` means ``quantity × days_per_unit``; ``empty_days`` leaves the field empty.
    ``trace`` reuses a traceability serial (a box settled twice); ``price`` overrides the
    typical unit price (cents).
    """

    code: str
    qty: int = 1
    days: int | None = None
    empty_days: bool = False
    trace: int | None = None
    price: int | None = None


@dataclass(frozen=True)
class Incident:
    """An injected incident: its rule, and the (site index, settlement_id) and row of each
    settlement involved."""

    rule: str
    settlements: tuple[tuple[int, str], ...]
    rows: tuple[int, ...]


class Book:
    """Victims, fresh patients, doctor slots and the incident register of one run."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.incidents: list[Incident] = []
        s = world.sett
        self._queue: dict[tuple[int, int], np.ndarray] = {}
        self._next: dict[tuple[int, int], int] = {}
        for site in world.sites:
            for visit in range(len(VISITS)):
                rows = np.flatnonzero((s.site == site.index) & (s.visit == visit))
                self._queue[(site.index, visit)] = rng.permutation(rows)
                self._next[(site.index, visit)] = 0
        self._slots: dict[int, set[int]] = {}

    # --- victims -------------------------------------------------------------------------

    def take(self, site: int, visit: int, where: Mask | None = None) -> int | None:
        """A clean, unreserved row of a site and visit type (and ``where``), now reserved."""
        queue = self._queue[(site, visit)]
        reserved = self.world.reserved
        if where is None:
            i = self._next[(site, visit)]
            while i < len(queue) and reserved[queue[i]]:
                i += 1
            self._next[(site, visit)] = i
            if i == len(queue):
                return None
            row = int(queue[i])
        else:
            found = queue[where[queue] & ~reserved[queue]]
            if len(found) == 0:
                return None
            row = int(found[0])
        reserved[row] = True
        return row

    # --- people and times ------------------------------------------------------------------

    def patient(self, gender: str | None, age: int, on: date, birthday: bool = False) -> int:
        """A fresh patient aged exactly ``age`` on ``on`` (``birthday``: born on that day)."""
        sex = int(self.rng.integers(0, 2)) if gender is None else (1 if gender == "M" else 0)
        anniversary = date(on.year - age, on.month, on.day)
        birth = (
            anniversary
            if birthday
            else anniversary - timedelta(days=int(self.rng.integers(20, 330)))
        )
        region = int(self.rng.integers(0, _LOCAL_REGIONS))
        insurance = 0 if 18 <= age <= 60 and self.rng.random() < 0.7 else 1
        return self.world.pop.add(sex, unix_day(birth), region, insurance)

    def _occupied(self, site: int) -> set[int]:
        if site not in self._slots:
            s = self.world.sett
            rows = np.flatnonzero((s.site == site) & (s.doctor >= 0))
            self._slots[site] = set(self._slot_keys(s.doctor[rows], s.admit[rows]).tolist())
        return self._slots[site]

    @staticmethod
    def _slot_keys(doctor: np.ndarray, admit: np.ndarray) -> np.ndarray:
        minute = (admit % DAY) // MINUTE
        pos = (minute - GRID_START) // SLOT_MINUTES
        keys: np.ndarray = (doctor * PERIOD_DAYS + admit // DAY) * SLOTS_PER_DAY + pos
        return keys

    def slot(
        self, site: int, doctor: int, day: int, odd: bool = False, earliest: int = 0
    ) -> int | None:
        """A free grid position of a doctor on a day, booked; its time in period seconds.

        Even positions are 10 minutes apart (the clean bulk's grid); odd ones lie between them,
        5 minutes from any even one, for incidents that need several orders within a minute.
        ``earliest`` is the first acceptable minute of the day.
        """
        taken = self._occupied(site)
        start = int(self.rng.integers(0, SLOTS_PER_DAY // 2))
        for k in range(SLOTS_PER_DAY // 2):
            pos = 2 * ((start + k) % (SLOTS_PER_DAY // 2)) + (1 if odd else 0)
            minute = GRID_START + pos * SLOT_MINUTES
            key = (doctor * PERIOD_DAYS + day) * SLOTS_PER_DAY + pos
            if minute >= earliest and key not in taken:
                taken.add(key)
                return day * DAY + minute * MINUTE
        return None

    def rewrite(
        self,
        row: int,
        patient: int,
        dx: str,
        fees: list[Fee],
        *,
        visit: int | None = None,
        admit: int | None = None,
        discharge: int = NO_TIME,
        drg: str = "",
        doctor: int = KEEP,
        pharmacist: int = KEEP,
        consult: bool = True,
    ) -> None:
        """Replace a victim's content; outpatient visits with a doctor get a consultation."""
        w, s = self.world, self.world.sett
        w.lines.kill(row)
        if visit is not None:
            s.visit[row] = visit
        if admit is not None:
            s.admit[row] = admit
        s.discharge[row] = discharge if int(s.visit[row]) == INPATIENT else NO_TIME
        s.patient[row], s.dx[row], s.drg[row], s.template[row] = patient, w.dx(dx), w.drg(drg), -1
        if doctor != KEEP:
            s.doctor[row] = doctor
        if pharmacist != KEEP:
            s.pharmacist[row] = pharmacist
        w.reserved[row] = True
        order = int(s.admit[row])
        has_doctor = w.sites[int(s.site[row])].has_doctors
        if consult and int(s.visit[row]) == 0 and has_doctor and CONSULT in w.kb.services:
            fees = [Fee(CONSULT), *fees]
        for fee in fees:
            item = w.catalog.item(fee.code)
            price = int(w.catalog.items.price[item]) if fee.price is None else fee.price
            drug = w.kb.drugs.get(fee.code)
            days = -1
            if drug is not None and not fee.empty_days:
                days = fee.qty * drug.days_per_unit if fee.days is None else fee.days
            w.lines.add(row, item, fee.qty, price, order, days, fee.trace, drug is not None)

    def record(self, rule: str, rows: list[int]) -> None:
        """Register an incident over settlement rows."""
        w = self.world
        pairs = tuple((int(w.sett.site[r]), w.sid(r)) for r in rows)
        self.incidents.append(Incident(rule, pairs, tuple(rows)))

    def admit_date(self, row: int) -> date:
        """The calendar date of a row's admission."""
        return day_date(int(self.world.sett.admit[row] // DAY))


def safe_age(item: Drug | Service, preferred: int = 45) -> int:
    """An age inside an item's age range, near ``preferred`` and away from the bounds."""
    low = item.min_age or 0
    high = item.max_age
    age = max(preferred, low + 2)
    if high is not None:
        age = min(age, high - 2)
    return max(age, low)
