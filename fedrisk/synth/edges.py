"""Clean settlements placed exactly at a rule's limit: they must *not* be flagged.

Limits written "above" are strict and windows are inclusive (docs/rules.md), so each of these
sits on the clean side of a boundary: quantity = max_units with days = max_days_supply, services
= max_per_day × stay days, age = max_age (or min_age) on the birthday itself, a readmission 16
days after discharge, two patients of one doctor within 60 s (or three within 61 s), days of
supply across two sites summing to exactly the limit, a month of pharmacy spend just below 8000
or 8400 across a month boundary, a pharmacy purchase without a diagnosis.
"""

from __future__ import annotations

from collections.abc import Callable

from fedrisk.models.kb import Drug, Service
from fedrisk.synth.book import Book, Fee, safe_age
from fedrisk.synth.catalog import drug_cap
from fedrisk.synth.clock import DAY, MINUTE, PERIOD_DAYS, day_date
from fedrisk.synth.incidents_cross import hospital_stays, two_stays
from fedrisk.synth.picks import affordable, item_dx, pick_site, place_one, sites_for, visit_of
from fedrisk.synth.sites import SiteProfile
from fedrisk.synth.tables import OUTPATIENT, PHARMACY
from fedrisk.synth.templates import CONSULT

ALL_TYPES = ("hospital", "clinic", "pharmacy")


def _plain(book: Book) -> list[Drug]:
    return [d for d in book.world.kb.drugs.values() if d.gender is None]


def units_and_days_at_limit(book: Book) -> int:
    """quantity = max_units with days_supply = max_days_supply; and the same with empty days."""
    placed = 0
    for drug in _plain(book):
        if drug.max_units * drug.days_per_unit >= drug.max_days_supply:
            fee = Fee(drug.code, drug.max_units, days=drug.max_days_supply)
            types = ALL_TYPES if affordable(drug, drug.max_units) else ("hospital", "clinic")
            placed += (
                place_one(book, types, [fee], item_dx(book, drug), None, safe_age(drug)) is not None
            )
            break
    for drug in _plain(book):
        units = drug.max_days_supply // max(drug.days_per_unit, 1)
        if units <= drug.max_units and units * drug.days_per_unit == drug.max_days_supply:
            fee = Fee(drug.code, units, empty_days=True)
            types = ALL_TYPES if affordable(drug, units) else ("hospital", "clinic")
            placed += (
                place_one(book, types, [fee], item_dx(book, drug), None, safe_age(drug)) is not None
            )
            break
    return placed


def services_at_limit(book: Book) -> int:
    """An outpatient service at max_per_day, and a stay with a per-day service at its limit."""
    kb = book.world.kb
    placed = 0
    for service in kb.services.values():
        if (
            service.gender is None
            and service.code != CONSULT
            and (service.max_age or 95) > 30
            and service.max_per_day > 1
        ):
            fees = [Fee(service.code, service.max_per_day)]
            placed += (
                place_one(
                    book, sites_for(service), fees, item_dx(book, service), None, safe_age(service)
                )
                is not None
            )
            break
    site = pick_site(book, ("hospital",))
    stays = hospital_stays(book)
    if site is not None and stays:
        rows = two_stays(book, site, stays[0], stays[-1], 40)
        if rows is not None:
            _raise_per_day(book, rows[0])
            placed += 2
    return placed


def _raise_per_day(book: Book, row: int) -> None:
    """Set every service of a stay with max_per_day > 1 to max_per_day × stay days."""
    w, s = book.world, book.world.sett
    stay = int(s.discharge[row] // DAY - s.admit[row] // DAY)
    for line in w.lines.of(row):
        service = w.kb.services.get(w.catalog.items.codes[w.lines.get(line, "item")])
        if service is not None and service.max_per_day > 1:
            qty = service.max_per_day * stay
            w.lines.set(line, "qty", qty)
            w.lines.set(line, "amount", qty * w.lines.get(line, "price"))


def ages_at_bounds(book: Book) -> int:
    """Items billed on the birthday that reaches max_age, or min_age, exactly."""
    kb = book.world.kb
    placed = 0
    items: list[Drug | Service] = [*kb.drugs.values(), *kb.services.values()]
    for item in items:
        if item.max_age is not None and item.max_age >= 1:
            age = item.max_age
        elif (item.min_age or 0) >= 10:
            age = item.min_age or 0
        else:
            continue
        fee = (
            Fee(item.code, 1, days=min(item.days_per_unit, item.max_days_supply))
            if isinstance(item, Drug)
            else Fee(item.code)
        )
        row = place_one(
            book, sites_for(item), [fee], item_dx(book, item), item.gender, age, birthday=True
        )
        placed += row is not None
    return placed


def readmissions_outside_window(book: Book) -> int:
    """Same site and diagnosis 16 days after discharge; a different diagnosis within 5 days."""
    stays = hospital_stays(book)
    site = pick_site(book, ("hospital",))
    if site is None or not stays:
        return 0
    placed = 0
    t = stays[int(book.rng.integers(0, len(stays)))]
    placed += 2 * (two_stays(book, site, t, t, 16) is not None)
    other = [
        u
        for u in stays
        if u.dx[0] != t.dx[0] and u.gender in (None, t.gender) and t.gender in (None, u.gender)
    ]
    if other:
        placed += 2 * (two_stays(book, site, t, other[0], 3) is not None)
    hospitals = [s for s in book.world.sites if s.site_type == "hospital"]
    if len(hospitals) >= 2:
        rows = two_stays(book, hospitals[0], t, t, 5)
        if rows is not None:
            _move_stay(book, rows[1], hospitals[1])
            placed += 2
    return placed


def _move_stay(book: Book, row: int, site: SiteProfile) -> None:
    """Give the content of a stay to a victim stay of another site (same times and patient)."""
    w, s = book.world, book.world.sett
    target = book.take(site.index, int(s.visit[row]))
    if target is None:
        return
    day = int(s.admit[row] // DAY)
    time = book.slot(site.index, int(s.doctor[target]), day)
    if time is None:
        return
    fees = [
        Fee(
            w.catalog.items.codes[w.lines.get(i, "item")],
            w.lines.get(i, "qty"),
            days=w.lines.get(i, "days") if w.lines.get(i, "days") >= 0 else None,
        )
        for i in w.lines.of(row)
    ]
    dx, drg = w.dx.values[int(s.dx[row])], w.drg.values[int(s.drg[row])]
    discharge = int(s.discharge[row]) + (time - int(s.admit[row]))
    book.rewrite(target, int(s.patient[row]), dx, fees, admit=time, discharge=discharge, drg=drg)
    book.rewrite(
        row,
        book.world.pop.clone(int(s.patient[row])),
        dx,
        fees,
        admit=int(s.admit[row]),
        discharge=int(s.discharge[row]),
        drg=drg,
    )


def orders_near_a_minute(book: Book) -> int:
    """One doctor, one monitored drug: two patients 60 s apart; three spread over 61 s; three
    within 60 s of a drug that is not monitored."""
    drugs = [d for d in _plain(book) if d.monitored]
    plain = [d for d in _plain(book) if not d.monitored]
    site = pick_site(book, ("hospital", "clinic"))
    if site is None:
        return 0
    placed = 0
    plans = []
    if drugs:
        plans += [(drugs[0], (0, 60)), (drugs[-1], (0, 30, 61))]
    if plain:
        plans.append((plain[0], (0, 20, 40)))
    doctors = book.world.staff.doctors_of(site)
    for drug, offsets in plans:
        doctor = doctors[int(book.rng.integers(0, len(doctors)))]
        start = book.slot(site.index, doctor, int(book.rng.integers(0, PERIOD_DAYS)), odd=True)
        if start is None:
            continue
        for offset in offsets:
            row = book.take(site.index, OUTPATIENT)
            if row is None:
                break
            patient = book.patient(None, safe_age(drug), day_date(start // DAY))
            book.rewrite(
                row,
                patient,
                item_dx(book, drug),
                [Fee(drug.code, 1)],
                admit=start + offset,
                doctor=doctor,
            )
            placed += 1
    return placed


def supply_at_limit_across_sites(book: Book) -> int:
    """Two sites, one patient and drug: Σ days = max_days_supply within 30 days; and Σ days
    above it but 35 days apart."""
    if len(book.world.sites) < 2:
        return 0
    placed = 0
    for drug in _plain(book):
        if drug.max_days_supply < 2 or not affordable(drug, drug_cap(drug)):
            continue
        half = drug.max_days_supply // 2
        for days, gap in (
            ((half, drug.max_days_supply - half), 10),
            ((drug.max_days_supply, drug.max_days_supply), 35),
        ):
            placed += _two_sites(book, drug, days, gap)
        break
    return placed


def _two_sites(book: Book, drug: Drug, days: tuple[int, int], gap: int) -> int:
    first = pick_site(book, ALL_TYPES)
    second = pick_site(book, ALL_TYPES, exclude=(first.index,)) if first else None
    if first is None or second is None:
        return 0
    day0 = int(book.rng.integers(0, PERIOD_DAYS - gap))
    patient = book.patient(None, safe_age(drug), day_date(day0))
    placed = 0
    for site, day, supply in ((first, day0, days[0]), (second, day0 + gap, days[1])):
        row = book.take(site.index, visit_of(site))
        if row is None:
            continue
        time = _time_on(book, site, row, day)
        if time is None:
            continue
        book.rewrite(
            row, patient, item_dx(book, drug), [Fee(drug.code, 1, days=supply)], admit=time
        )
        placed += 1
    return placed


def _time_on(book: Book, site: SiteProfile, row: int, day: int) -> int | None:
    if site.has_doctors:
        return book.slot(site.index, int(book.world.sett.doctor[row]), day)
    return day * DAY + int(book.rng.integers(9 * 60, 20 * 60)) * MINUTE


def pharmacy_spend_near_limit(book: Book) -> int:
    """Just under 8000 in one month; 8400 split by a month boundary (Σ days = the limit)."""
    pharmacies = [s for s in book.world.sites if s.site_type == "pharmacy"]
    expensive = sorted(
        (
            d
            for d in _plain(book)
            if 2_000 <= float(d.typical_unit_price) < 4_000 and drug_cap(d) >= 2
        ),
        key=lambda d: d.code,
    )
    if not pharmacies or not expensive:
        return 0
    drug = expensive[0]
    price = float(drug.typical_unit_price)
    placed = 0
    a = pharmacies[0]
    b = pharmacies[1] if len(pharmacies) > 1 else a
    boxes = int(7_999 // price)
    if boxes * drug.days_per_unit <= drug.max_days_supply:
        plan = [
            (a, 30, min(boxes, drug_cap(drug))),
            (b, 31, boxes - min(boxes, drug_cap(drug)) or 1),
        ]
        if sum(q for _, _, q in plan) * drug.days_per_unit <= drug.max_days_supply:
            placed += _purchases(book, drug, plan)
    rest = 7_999 - price * min(2, drug_cap(drug))
    fillers = [
        d for d in _plain(book) if d.code != drug.code and 0 < float(d.typical_unit_price) <= rest
    ]
    if fillers:
        filler = max(fillers, key=lambda d: float(d.typical_unit_price))
        qty = max(1, min(drug_cap(filler), int(rest // float(filler.typical_unit_price))))
        placed += _purchases(
            book, drug, [(a, 40, min(2, drug_cap(drug)))], extra=(filler, qty, b, 45)
        )
    return placed


def _purchases(
    book: Book,
    drug: Drug,
    plan: list[tuple[SiteProfile, int, int]],
    extra: tuple[Drug, int, SiteProfile, int] | None = None,
) -> int:
    first_day = plan[0][1]
    patient = book.patient(None, safe_age(drug), day_date(first_day))
    dx = item_dx(book, drug)
    if extra is not None:
        dx = f"{dx}|{item_dx(book, extra[0])}"
    purchases = [(site, day, drug, qty) for site, day, qty in plan]
    if extra is not None:
        purchases.append((extra[2], extra[3], extra[0], extra[1]))
    placed = 0
    for site, day, item, qty in purchases:
        row = book.take(site.index, PHARMACY)
        if row is None:
            continue
        time = day * DAY + int(book.rng.integers(9 * 60, 19 * 60)) * MINUTE
        book.rewrite(row, patient, dx, [Fee(item.code, qty)], admit=time)
        placed += 1
    return placed


def purchase_without_diagnosis(book: Book) -> int:
    """A pharmacy purchase of a drug with indications and an empty diagnosis list."""
    drugs = [d for d in _plain(book) if d.indications and affordable(d, 1)]
    site = pick_site(book, ("pharmacy",))
    if not drugs or site is None:
        return 0
    row = book.take(site.index, PHARMACY)
    if row is None:
        return 0
    drug = drugs[int(book.rng.integers(0, len(drugs)))]
    book.rewrite(
        row, book.patient(None, safe_age(drug), book.admit_date(row)), "", [Fee(drug.code, 1)]
    )
    return 1


EDGES: tuple[Callable[[Book], int], ...] = (
    units_and_days_at_limit,
    services_at_limit,
    ages_at_bounds,
    readmissions_outside_window,
    orders_near_a_minute,
    supply_at_limit_across_sites,
    pharmacy_spend_near_limit,
    purchase_without_diagnosis,
)


def place_edges(book: Book, copies: int) -> int:
    """Place ``copies`` rounds of every edge case; returns the settlements used."""
    placed = 0
    for _ in range(copies):
        for edge in EDGES:
            placed += edge(book)
    return placed
