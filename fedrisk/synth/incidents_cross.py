"""Injectors of the rules that compare settlements: traces, supply, spend, doctors, stays.

Each incident rewrites a few clean settlements (victims) with fresh patients, so nothing outside
the incident joins its groups; times are set so that the incident's own window holds and no
other one opens (doctor slots at least 5 minutes from any other order of that doctor, pharmacy
purchases of one patient within one month, days of supply within the limit where another rule
would count them).
"""

from __future__ import annotations

from math import ceil

import numpy as np

from fedrisk.models.kb import Drug
from fedrisk.synth.book import Book, Fee, safe_age
from fedrisk.synth.catalog import drug_cap
from fedrisk.synth.clock import DAY, MINUTE, PERIOD_DAYS, day_date, month_bounds
from fedrisk.synth.picks import item_dx, mid_age, pick_site, visit_of
from fedrisk.synth.sites import SiteProfile
from fedrisk.synth.tables import INPATIENT, OUTPATIENT, PHARMACY, SETTLE_DELAY
from fedrisk.synth.templates import Template

NO_VICTIM = "no clean settlement of a suitable site was left to rewrite"


def _at(book: Book, site: SiteProfile, day: int, earliest: int = 0) -> tuple[int, int] | None:
    """A victim of a site and its new admission time on ``day`` (a free doctor slot)."""
    row = book.take(site.index, visit_of(site))
    if row is None:
        return None
    if site.has_doctors:
        time = book.slot(site.index, int(book.world.sett.doctor[row]), day, earliest=earliest)
        return None if time is None else (row, time)
    minute = int(book.rng.integers(max(9 * 60, earliest), 20 * 60))
    return row, day * DAY + minute * MINUTE


def _purchases(
    book: Book,
    patient: int,
    drug: Drug,
    visits: list[tuple[SiteProfile, int, int]],
    skip_missing: bool = False,
) -> list[int]:
    """One patient buying ``drug`` at each (site, day, boxes); the rewritten rows. A visit with
    no free settlement that day is skipped, or (by default) ends the series."""
    rows = []
    for site, day, qty in visits:
        placed = _at(book, site, day)
        if placed is None:
            if skip_missing:
                continue
            break
        row, time = placed
        book.rewrite(row, patient, item_dx(book, drug), [Fee(drug.code, qty)], admit=time)
        rows.append(row)
    return rows


def _plain_drugs(book: Book, max_price: float) -> list[Drug]:
    drugs = book.world.kb.drugs.values()
    return [d for d in drugs if d.gender is None and float(d.typical_unit_price) <= max_price]


def duplicate_trace_code(book: Book, count: int) -> str | None:
    """One box (traceability code) settled twice: at one site, or at two sites."""
    drugs = [d for d in _plain_drugs(book, 100) if not d.monitored] or _plain_drugs(book, 1e9)
    if not drugs:
        return "the knowledge base has no drug without a sex restriction"
    types = ("hospital", "clinic", "pharmacy")
    done = 0
    for k in range(count):
        drug = drugs[int(book.rng.integers(0, len(drugs)))]
        first = pick_site(book, types)
        if first is None:
            return NO_VICTIM
        second = pick_site(book, types, exclude=(first.index,)) if k % 2 else None
        serial = book.world.lines.new_trace()
        rows = []
        for site in (first, second or first):
            row = book.take(site.index, visit_of(site))
            if row is None:
                break
            patient = book.patient(None, safe_age(drug), book.admit_date(row))
            fee = Fee(
                drug.code, 1, days=min(drug.days_per_unit, drug.max_days_supply), trace=serial
            )
            book.rewrite(row, patient, item_dx(book, drug), [fee])
            rows.append(row)
        if len(rows) == 2:
            book.record("duplicate_trace_code", rows)
            done += 1
    return None if done else NO_VICTIM


def cross_site_over_quantity(book: Book, count: int) -> str | None:
    """One patient, one drug, 2–3 sites within three weeks, Σ days of supply over the limit."""
    sites = book.world.sites
    if len(sites) < 2:
        return "needs at least two sites"
    options = []
    for drug in _plain_drugs(book, 200):
        cap = drug_cap(drug)
        for m in (2, 3):
            if m <= len(sites) and cap >= 1 and m * cap * drug.days_per_unit > drug.max_days_supply:
                options.append((drug, m))
    if not options:
        return "no drug can exceed its days of supply over the available sites within limits"
    done = 0
    for _ in range(count):
        drug, m = options[int(book.rng.integers(0, len(options)))]
        cap = drug_cap(drug)
        low = min(cap, drug.max_days_supply // (m * drug.days_per_unit) + 1)
        qty = int(book.rng.integers(low, cap + 1))
        chosen: list[SiteProfile] = []
        for _ in range(m):
            site = pick_site(
                book, ("hospital", "clinic", "pharmacy"), tuple(s.index for s in chosen)
            )
            if site is not None:
                chosen.append(site)
        day0 = int(book.rng.integers(0, PERIOD_DAYS - 21))
        days = [
            day0,
            *sorted((day0 + book.rng.choice(np.arange(1, 21), m - 1, replace=False)).tolist()),
        ]
        patient = book.patient(None, safe_age(drug), day_date(day0))
        visits = [(site, day, qty) for site, day in zip(chosen, days, strict=False)]
        rows = _purchases(book, patient, drug, visits, skip_missing=True)
        if (
            len({int(book.world.sett.site[r]) for r in rows}) >= 2
            and len(rows) * qty * drug.days_per_unit > drug.max_days_supply
        ):
            book.record("cross_site_over_quantity", rows)
            done += 1
    return None if done else NO_VICTIM


def monthly_pharmacy_spend(book: Book, count: int) -> str | None:
    """One patient's pharmacy purchases in a month total ≥ 8000, each site and bill below it."""
    pharmacies = [s for s in book.world.sites if s.site_type == "pharmacy"]
    if not pharmacies:
        return "needs a pharmacy"
    drugs = [d for d in _plain_drugs(book, 7_999) if float(d.typical_unit_price) >= 2_000]
    if not drugs:
        return "no drug is expensive enough to reach 8000 in a few purchases"
    done = 0
    for k in range(count):
        drug = drugs[k % len(drugs)]
        price = float(drug.typical_unit_price)
        boxes = ceil(8_000 / price)
        per_bill = max(1, min(drug_cap(drug), int(7_999 // price)))
        split = boxes * drug.days_per_unit <= drug.max_days_supply and len(pharmacies) >= 2
        if split and k % 2 and boxes <= len(pharmacies):
            plan = [1] * boxes
        elif split:
            plan = [min(per_bill, boxes - 1), boxes - min(per_bill, boxes - 1)]
        else:
            plan = [per_bill] * (boxes // per_bill) + (
                [boxes % per_bill] if boxes % per_bill else []
            )
        if split:
            order = book.rng.permutation(len(pharmacies))[: len(plan)]
            sites = [pharmacies[i] for i in order.tolist()]
        else:
            sites = [pharmacies[int(book.rng.integers(0, len(pharmacies)))]] * len(plan)
        if len(sites) < len(plan):
            continue
        first, last = month_bounds(int(book.rng.integers(0, 3)))
        days = sorted(
            book.rng.choice(np.arange(first + 1, last), len(plan), replace=False).tolist()
        )
        patient = book.patient(None, safe_age(drug), day_date(days[0]))
        rows = _purchases(book, patient, drug, list(zip(sites, days, plan, strict=True)))
        if len(rows) == len(plan):
            book.record("monthly_pharmacy_spend", rows)
            done += 1
    return None if done else NO_VICTIM


def batch_prescribing(book: Book, count: int) -> str | None:
    """One doctor orders one monitored drug for 3–4 patients within 60 seconds."""
    drugs = [d for d in book.world.kb.drugs.values() if d.monitored]
    if not drugs:
        return "the knowledge base has no monitored drug"
    done = 0
    for k in range(count):
        site = pick_site(book, ("hospital", "clinic"))
        if site is None:
            return "needs a hospital or clinic (pharmacy settlements name no doctor)"
        doctors = book.world.staff.doctors_of(site)
        doctor = doctors[int(book.rng.integers(0, len(doctors)))]
        start = book.slot(site.index, doctor, int(book.rng.integers(0, PERIOD_DAYS)), odd=True)
        if start is None:
            continue
        patients = 3 + k % 2
        span = 60 if k % 4 == 0 else int(book.rng.integers(15, 60))
        middle = sorted(book.rng.choice(np.arange(1, span), patients - 2, replace=False).tolist())
        drug = drugs[int(book.rng.integers(0, len(drugs)))]
        qty = max(1, min(drug_cap(drug), 1 + int(book.rng.integers(0, 2))))
        rows = []
        for offset in [0, *middle, span]:
            row = book.take(site.index, OUTPATIENT)
            if row is None:
                break
            patient = book.patient(drug.gender, safe_age(drug), day_date(start // DAY))
            fee = Fee(drug.code, qty)
            book.rewrite(
                row, patient, item_dx(book, drug), [fee], admit=start + offset, doctor=doctor
            )
            rows.append(row)
        if len(rows) >= 3:
            book.record("batch_prescribing", rows)
            done += 1
    return None if done else NO_VICTIM


def template_fees(book: Book, t: Template, stay: int) -> list[Fee]:
    """Fee lines of a visit template for a stay of ``stay`` days (its usual lines)."""
    fees = []
    for spec in t.lines:
        if spec.p < 0.5:
            continue
        qty = spec.q[0] * (stay if spec.per_day else 1)
        fees.append(Fee(spec.code, qty))
    return fees


def two_stays(
    book: Book,
    site: SiteProfile,
    first: Template,
    second: Template,
    gap: int,
    exact: bool = False,
) -> list[int] | None:
    """Two stays of one fresh patient at a site, the second admitted ``gap`` days after the
    first one's discharge date.

    With ``exact`` the gap is exactly ``gap`` × 24 hours; with ``gap`` 0 the second stay starts
    1–2 hours after the discharge; otherwise the discharge is at 09:00–11:55 and the admission
    a doctor slot of that day, at least ``gap`` days after it when ``gap`` > 15.
    """
    s = book.world.sett
    los_a = int(book.rng.integers(first.los[0], first.los[1] + 1))
    los_b = int(book.rng.integers(second.los[0], second.los[1] + 1))
    latest = PERIOD_DAYS - 1 - (los_a + gap + los_b)
    row_a = book.take(site.index, INPATIENT)
    row_b = book.take(site.index, INPATIENT)
    if latest < 0 or row_a is None or row_b is None:
        return None
    a = int(book.rng.integers(0, latest + 1))
    b = a + los_a + gap
    earliest = 10 * 60 if gap == 0 or gap > 15 else 0
    admit_b = book.slot(site.index, int(s.doctor[row_b]), b, earliest=earliest)
    admit_a = book.slot(site.index, int(s.doctor[row_a]), a)
    if admit_a is None or admit_b is None:
        return None
    if exact:
        out_minute = (admit_b % DAY) // MINUTE
    elif gap == 0:
        out_minute = (admit_b % DAY) // MINUTE - int(book.rng.integers(60, 121))
    else:
        out_minute = 9 * 60 + 5 * int(book.rng.integers(0, 12 if gap > 15 else 36))
    discharge_a = (a + los_a) * DAY + out_minute * MINUTE
    discharge_b = (b + los_b) * DAY + (9 * 60 + 5 * int(book.rng.integers(0, 36))) * MINUTE
    low = max(first.min_age, second.min_age)
    high = min(first.max_age, second.max_age)
    patient = book.patient(first.gender or second.gender, mid_age(low, high), day_date(a))
    plan = (
        (row_a, first, admit_a, discharge_a, los_a),
        (row_b, second, admit_b, discharge_b, los_b),
    )
    for row, t, admit, out, los in plan:
        drg = f"{t.drg}{5 if book.rng.random() < 0.5 else 3}"
        fees = template_fees(book, t, los)
        book.rewrite(row, patient, t.dx[0], fees, admit=admit, discharge=out, drg=drg)
    return [row_a, row_b]


def hospital_stays(book: Book) -> list[Template]:
    """The inpatient visit templates of the catalogue."""
    visits = book.world.catalog.for_site_type("hospital")
    return [v.template for v in visits if v.template.visit == "inpatient"]


def split_admission(book: Book, count: int) -> str | None:
    """A readmission at the same site with the same principal diagnosis within 15 days."""
    stays = hospital_stays(book)
    if not stays or pick_site(book, ("hospital",)) is None:
        return "needs a hospital with inpatient stays"
    done = 0
    for k in range(count):
        site = pick_site(book, ("hospital",))
        assert site is not None
        t = stays[int(book.rng.integers(0, len(stays)))]
        gap = 15 if k % 5 == 0 else (0 if k % 5 == 1 else int(book.rng.integers(1, 15)))
        rows = two_stays(book, site, t, t, gap, exact=gap == 15)
        if rows is not None:
            book.record("split_admission", rows)
            done += 1
    return None if done else NO_VICTIM


def pharmacist_multi_site(book: Book, count: int) -> str | None:
    """One pharmacist settling at two pharmacies 3–9 minutes apart.

    The pharmacist has no other settlement within 12 minutes of the away purchase, nor at
    another site within 12 minutes of the home one, so the pair is exactly the incident.
    """
    pharmacies = [s for s in book.world.sites if s.site_type == "pharmacy"]
    if len(pharmacies) < 2:
        return "needs at least two pharmacies"
    drugs = [d for d in _plain_drugs(book, 100) if not d.monitored] or _plain_drugs(book, 1e9)
    s = book.world.sett
    window = 12 * MINUTE
    done = 0
    for k in range(count):
        order = book.rng.permutation(len(pharmacies))
        home, away = pharmacies[int(order[0])], pharmacies[int(order[1])]
        staff = list(book.world.staff.pharmacists_of(home))
        pharmacist = staff[k % len(staff)]
        mine = np.flatnonzero((s.pharmacist == pharmacist) & ~book.world.rejected)
        times, sites = s.settle()[mine], s.site[mine]
        for _attempt in range(200):
            day = int(book.rng.integers(0, PERIOD_DAYS))
            at_home = day * DAY + int(book.rng.integers(9 * 60, 19 * 60)) * MINUTE
            away_time = at_home + int(book.rng.integers(3, 10)) * MINUTE
            near_away = np.abs(times - away_time) <= window
            near_home = (np.abs(times - at_home) <= window) & (sites != home.index)
            if not (near_away.any() or near_home.any()):
                break
        else:
            continue
        rows = []
        for site, time in ((home, at_home), (away, away_time)):
            row = book.take(site.index, PHARMACY)
            if row is None:
                break
            drug = drugs[int(book.rng.integers(0, len(drugs)))]
            patient = book.patient(None, safe_age(drug), day_date(day))
            fee = Fee(drug.code, 1, days=min(drug.days_per_unit, drug.max_days_supply))
            admit = time - SETTLE_DELAY
            book.rewrite(
                row, patient, item_dx(book, drug), [fee], admit=admit, pharmacist=pharmacist
            )
            rows.append(row)
        if len(rows) == 2:
            book.record("pharmacist_multi_site", rows)
            done += 1
    return None if done else NO_VICTIM
