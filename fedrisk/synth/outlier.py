"""The ``prescriber_outlier`` injector: one doctor's monthly amount of a drug > 20 × the mean.

The federation-wide mean per prescribing doctor is measured on the data as it will be accepted
(rejected settlements and lines left out), after every other incident. For each drug and month
prescribed by ``k`` doctors whose amounts sum to ``S``, a doctor who has not prescribed it that
month and then prescribes ``x`` is an outlier when ``x × (k + 1) > 20 × (x + S)``, which needs
``k + 1 > 20`` doctors. The cheapest (drug, month) in settlements is chosen; clean outpatient
visits of that month at the doctor's site (without that drug) are rewritten to the doctor, at
free slots of the doctor's grid, with fresh patients and the largest clean quantity.
"""

from __future__ import annotations

from math import ceil
from typing import Final

import numpy as np

from fedrisk.synth.book import Book, Fee, safe_age
from fedrisk.synth.catalog import drug_cap
from fedrisk.synth.clock import DAY, I64, Mask, day_date, month_bounds, month_index
from fedrisk.synth.picks import item_dx
from fedrisk.synth.tables import OUTPATIENT
from fedrisk.synth.world import World

FACTOR: Final = 20
MARGIN: Final = 1.15


def doctor_amounts(world: World, dead_lines: Mask) -> tuple[I64, I64, I64, I64, I64]:
    """Accepted drug lines with a real doctor: (item, month, doctor, amount, settlement row)."""
    cols, alive = world.lines.frozen()
    sett = cols["sett"]
    keep = alive & world.catalog.items.is_drug[cols["item"]]
    keep[: len(dead_lines)] &= ~dead_lines
    keep &= ~world.rejected[sett] & (world.sett.doctor[sett] >= 0)
    idx = np.flatnonzero(keep)
    month = month_index(cols["order"][idx])
    return cols["item"][idx], month, world.sett.doctor[sett[idx]], cols["amount"][idx], sett[idx]


def outlier_ratios(world: World, dead_lines: Mask) -> dict[tuple[int, int], tuple[int, int, float]]:
    """Per (item, month): prescribing doctors, total amount, and the largest doctor/mean ratio."""
    item, month, doctor, amount, _ = doctor_amounts(world, dead_lines)
    out: dict[tuple[int, int], tuple[int, int, float]] = {}
    key = (item * 4 + month) * 1_000_000 + doctor
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=amount, minlength=len(uniq))
    group = uniq // 1_000_000
    for g in np.unique(group).tolist():
        own = sums[group == g]
        total = float(own.sum())
        ratio = float(own.max()) * len(own) / total if total else 0.0
        out[(g // 4, g % 4)] = (len(own), round(total), ratio)
    return out


def prescriber_outlier(book: Book, count: int, dead_lines: Mask) -> str | None:
    """Inject up to ``count`` outlier doctors (distinct drugs); see the module docstring."""
    w = book.world
    sites = [s for s in w.sites if s.has_doctors]
    if not sites:
        return "needs a hospital or clinic (pharmacy settlements name no doctor)"
    stats = outlier_ratios(w, dead_lines)
    doctors_total = sum(s.doctors for s in sites)
    options = []
    for (item, month), (k, total, _) in stats.items():
        code = w.catalog.items.codes[item]
        drug = w.kb.drugs[code]
        if k + 1 <= FACTOR or drug_cap(drug) < 1:
            continue
        need = FACTOR * total / (k + 1 - FACTOR) * MARGIN
        per_visit = drug_cap(drug) * int(w.catalog.items.price[item])
        options.append((ceil(need / per_visit) + 1, item, month))
    if not options:
        return (
            f"no drug was prescribed by more than {FACTOR - 1} doctors in one month "
            f"({doctors_total} doctors federation-wide): the mean cannot be exceeded 20-fold"
        )
    options.sort()
    limit = max(100, len(w.sett) // 150)
    done = 0
    used_items: set[int] = set()
    for visits, item, month in options:
        if done >= count:
            break
        if visits > limit or item in used_items:
            continue
        if _inject(book, item, month, visits, dead_lines, used_items):
            used_items.add(item)
            done += 1
    if done:
        return None
    return f"an outlier would need {options[0][0]} settlements of one doctor in one month"


def _inject(
    book: Book, item: int, month: int, visits: int, dead_lines: Mask, protected: set[int]
) -> bool:
    """Rewrite clean visits to one new prescriber of ``item`` until the doctor is an outlier.

    Victims never hold ``item`` nor a drug of an earlier outlier incident (``protected``), so
    no other doctor's amount or count changes for those drugs.
    """
    w = book.world
    code = w.catalog.items.codes[item]
    drug = w.kb.drugs[code]
    cols, alive = w.lines.frozen()
    sett = cols["sett"]
    with_drug = np.zeros(len(w.sett), dtype=np.bool_)
    with_drug[sett[alive & (cols["item"] == item)]] = True
    touches = np.zeros(len(w.sett), dtype=np.bool_)
    touches[sett[alive & np.isin(cols["item"], sorted(protected | {item}))]] = True
    first, last = month_bounds(month)
    day = w.sett.admit // DAY
    in_month = (day >= first) & (day <= last)
    prescribers = set(w.sett.doctor[with_drug & in_month].tolist())
    sites = [s for s in w.sites if s.has_doctors]
    order = book.rng.permutation(len(sites))
    for site in (sites[i] for i in order.tolist()):
        where = in_month & ~touches & (w.sett.site == site.index) & (w.sett.visit == OUTPATIENT)
        if int((where & ~w.reserved).sum()) < visits:
            continue
        staff = [d for d in w.staff.doctors_of(site) if d not in prescribers]
        if not staff:
            continue
        doctor = staff[int(book.rng.integers(0, len(staff)))]
        rows = []
        qty = drug_cap(drug)
        while True:
            row = book.take(site.index, OUTPATIENT, where)
            if row is None:
                break
            time = None
            for _ in range(20):
                time = book.slot(site.index, doctor, int(book.rng.integers(first, last + 1)))
                if time is not None:
                    break
            if time is None:
                break
            patient = book.patient(drug.gender, safe_age(drug), day_date(time // DAY))
            book.rewrite(
                row, patient, item_dx(book, drug), [Fee(code, qty)], admit=time, doctor=doctor
            )
            rows.append(row)
            if len(rows) >= visits and _is_outlier(w, item, month, doctor, dead_lines):
                book.record("prescriber_outlier", rows)
                return True
        if rows and _is_outlier(w, item, month, doctor, dead_lines):
            book.record("prescriber_outlier", rows)  # ran out of victims, yet an outlier
            return True
        return False
    return False


def _is_outlier(world: World, item: int, month: int, doctor: int, dead_lines: Mask) -> bool:
    items, months, doctors, amounts, _ = doctor_amounts(world, dead_lines)
    mine = (items == item) & (months == month)
    per_doctor: dict[int, int] = {}
    for d, a in zip(doctors[mine].tolist(), amounts[mine].tolist(), strict=True):
        per_doctor[d] = per_doctor.get(d, 0) + a
    total = sum(per_doctor.values())
    return per_doctor.get(doctor, 0) * len(per_doctor) > FACTOR * total
