"""Injectors of the rules that look at one settlement: each writes ``count`` incidents.

Every incident is one rewritten clean settlement with a fresh patient, built so that only its own
rule fires: other items of the settlement (the consultation) have no restriction, quantities and
days stay within limits, the drugs fit the diagnoses, and pharmacy bills stay well under 8000.
An injector returns ``None`` when it wrote incidents, or the reason it could not.
"""

from __future__ import annotations

from math import ceil

from fedrisk.models.kb import Drug, Service
from fedrisk.synth.book import Book, Fee, safe_age
from fedrisk.synth.picks import (
    affordable,
    ages_fit,
    item_dx,
    mid_age,
    pick_site,
    place_one,
    sites_for,
)
from fedrisk.synth.tables import INPATIENT, NO_DOCTOR, UNKNOWN_DOCTOR
from fedrisk.synth.templates import BED, CBC, CONSULT

NO_SITE = "no site of a suitable type had a clean settlement left to rewrite"


def _single(
    book: Book,
    rule: str,
    types: tuple[str, ...],
    fees: list[Fee],
    dx: str,
    gender: str | None,
    age: int,
) -> bool:
    """One incident settlement at a site of ``types`` (pharmacies take drugs only)."""
    row = place_one(book, types, fees, dx, gender, age)
    if row is None:
        return False
    book.record(rule, [row])
    return True


def _fee(item: Drug | Service, qty: int = 1) -> Fee:
    if isinstance(item, Drug):
        return Fee(item.code, qty, days=min(item.days_per_unit * qty, item.max_days_supply))
    return Fee(item.code, qty)


def _shuffled(book: Book, items: list[Drug | Service]) -> list[Drug | Service]:
    return [items[i] for i in book.rng.permutation(len(items)).tolist()]


def _all_items(book: Book) -> list[Drug | Service]:
    kb = book.world.kb
    return [*kb.drugs.values(), *kb.services.values()]


def gender_conflict(book: Book, count: int) -> str | None:
    """An item restricted to one sex, billed for the other (e.g. hysteroscopy for a man)."""
    items = _shuffled(book, [i for i in _all_items(book) if i.gender])
    if not items:
        return "the knowledge base has no item restricted to one sex"
    done = 0
    for k in range(count):
        item = items[k % len(items)]
        other = "F" if item.gender == "M" else "M"
        fees = [_fee(item)]
        done += _single(
            book,
            "gender_conflict",
            sites_for(item),
            fees,
            item_dx(book, item),
            other,
            safe_age(item),
        )
    return None if done else NO_SITE


def age_conflict(book: Book, count: int) -> str | None:
    """An item outside its age range (e.g. oocyte retrieval at 73, semaglutide at 15)."""
    pool = _all_items(book)
    items = _shuffled(book, [i for i in pool if (i.min_age or 0) >= 1 or i.max_age is not None])
    if not items:
        return "the knowledge base has no item with an age range"
    done = 0
    for k in range(count):
        item = items[k % len(items)]
        too_old = item.max_age is not None and ((item.min_age or 0) < 1 or book.rng.random() < 0.5)
        if too_old and item.max_age is not None:
            age = min(95, item.max_age + int(book.rng.integers(1, 26)))
        else:
            age = int(book.rng.integers(0, item.min_age or 1))
        fees = [_fee(item)]
        done += _single(
            book, "age_conflict", sites_for(item), fees, item_dx(book, item), item.gender, age
        )
    return None if done else NO_SITE


def over_quantity(book: Book, count: int) -> str | None:
    """Units, days of supply or services per day above the limit on one settlement."""
    kb = book.world.kb
    drugs = [d for d in kb.drugs.values() if d.gender is None]
    services = [
        s
        for s in kb.services.values()
        if s.gender is None and s.code not in (CONSULT, BED) and (s.max_age or 95) >= 30
    ]
    if not drugs and not services:
        return "the knowledge base has no item without a sex restriction"
    done = 0
    for k in range(count):
        variant = k % 6
        if variant == 5 and _over_bed_days(book):
            done += 1
            continue
        if variant == 4 and services:
            service = services[int(book.rng.integers(0, len(services)))]
            fees = [Fee(service.code, service.max_per_day + 1)]
            age = safe_age(service)
            done += _single(
                book, "over_quantity", sites_for(service), fees, item_dx(book, service), None, age
            )
            continue
        drug = drugs[int(book.rng.integers(0, len(drugs)))]
        fees = _over_drug_fees(drug, variant % 4) or _over_drug_fees(drug, 0) or []
        units = sum(f.qty for f in fees)
        types = (
            ("hospital", "clinic", "pharmacy")
            if affordable(drug, units)
            else ("hospital", "clinic")
        )
        done += _single(
            book, "over_quantity", types, fees, item_dx(book, drug), None, safe_age(drug)
        )
    return None if done else NO_SITE


def _over_drug_fees(drug: Drug, variant: int) -> list[Fee] | None:
    """Variant 0: units; 1: explicit days; 2: days from quantity × days_per_unit; 3: two lines."""
    if variant == 0:
        qty = drug.max_units + 1
        return [Fee(drug.code, qty, days=min(drug.max_days_supply, qty * drug.days_per_unit))]
    if variant == 1:
        return [Fee(drug.code, 1, days=drug.max_days_supply + 1 + drug.max_days_supply // 3)]
    if variant == 2:
        qty = drug.max_days_supply // max(drug.days_per_unit, 1) + 1
        return [Fee(drug.code, qty, empty_days=True)] if qty <= drug.max_units else None
    first = ceil((drug.max_units + 1) / 2)
    second = drug.max_units + 1 - first
    days = max(1, drug.max_days_supply // 4)
    return [Fee(drug.code, first, days=days), Fee(drug.code, second, days=days)]


def _over_bed_days(book: Book) -> bool:
    """A stay billing more bed days than it lasted."""
    site = pick_site(book, ("hospital",))
    if site is None or BED not in book.world.kb.services:
        return False
    row = book.take(site.index, INPATIENT)
    if row is None:
        return False
    s = book.world.sett
    stay = int(s.discharge[row] // 86_400 - s.admit[row] // 86_400)
    patient = book.patient(None, 50, book.admit_date(row))
    fees = [Fee(BED, stay + 1 + int(book.rng.integers(0, 3)))]
    fees += [Fee(CBC)] if CBC in book.world.kb.services else []
    book.rewrite(row, patient, "J06.900", fees, discharge=int(s.discharge[row]), drg="ES35")
    book.record("over_quantity", [row])
    return True


def indication_mismatch(book: Book, count: int) -> str | None:
    """A drug none of whose indications matches the settlement's diagnoses."""
    catalog = book.world.catalog
    drugs = [d for d in book.world.kb.drugs.values() if d.indications]
    if not drugs:
        return "no drug of the knowledge base has indications"
    done = 0
    for k in range(count):
        drug = drugs[int(book.rng.integers(0, len(drugs)))]
        dx = catalog.dx_not_matching(drug.indications, int(book.rng.integers(0, 1000)))
        if k % 3 == 2:
            second = catalog.dx_not_matching(drug.indications, int(book.rng.integers(0, 1000)))
            dx = dx if second == dx else f"{dx}|{second}"
        fees = [_fee(drug)]
        done += _single(
            book, "indication_mismatch", sites_for(drug), fees, dx, drug.gender, safe_age(drug)
        )
    return None if done else NO_SITE


def interaction(book: Book, count: int) -> str | None:
    """Two drugs of one settlement that form a pair of kb/interactions.csv."""
    kb = book.world.kb
    pairs = []
    for pair in kb.interactions:
        a, b = kb.drugs[pair.drug_a], kb.drugs[pair.drug_b]
        if a.gender and b.gender and a.gender != b.gender:
            continue
        low, high = ages_fit([a, b])
        if low <= high:
            pairs.append((a, b, a.gender or b.gender, mid_age(low, high)))
    if not pairs:
        return "the knowledge base lists no interaction two drugs of one patient can form"
    done = 0
    for k in range(count):
        a, b, gender, age = pairs[k % len(pairs)]
        dx = "|".join(dict.fromkeys((item_dx(book, a), item_dx(book, b))))
        fees = [_fee(a), _fee(b)]
        done += _single(
            book, "interaction", ("hospital", "clinic", "pharmacy"), fees, dx, gender, age
        )
    return None if done else NO_SITE


def unknown_doctor(book: Book, count: int) -> str | None:
    """Accepted settlements at a hospital or clinic whose doctor is ``UNKNOWN`` or empty."""
    done = 0
    for k in range(count):
        site = pick_site(book, ("hospital", "clinic"))
        if site is None:
            return "no hospital or clinic: an empty doctor is normal at a pharmacy"
        visit = INPATIENT if site.site_type == "hospital" and k % 5 == 4 else 0
        row = book.take(site.index, visit)
        if row is None:
            continue
        book.world.sett.doctor[row] = NO_DOCTOR if k % 3 == 2 else UNKNOWN_DOCTOR
        book.record("data_quality", [row])
        done += 1
    return None if done else NO_SITE
