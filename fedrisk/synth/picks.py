"""Choices shared by the injectors: sites, items, diagnoses and safe quantities."""

from __future__ import annotations

import numpy as np

from fedrisk.models.kb import Drug, Service
from fedrisk.synth.book import Book, Fee
from fedrisk.synth.sites import SiteProfile
from fedrisk.synth.tables import OUTPATIENT, PHARMACY
from fedrisk.synth.templates import HOSPITAL_ONLY

SERVICE_DX = {
    "S331302001": "N84.000",
    "S331202010": "N97.900",
    "S331202011": "N97.900",
    "S311000001": "N40.x00",
    "S330101001": "O80.000",
    "S331400001": "O82.000",
    "S310300001": "N47.x00",
    "S330201001": "Z00.100",
    "S311202001": "N20.000",
    "S310701001": "K25.900",
    "S310800001": "N18.500",
    "S210300001": "R51.x00",
    "S210100001": "R51.x00",
    "S240300001": "I69.300",
    "S330300001": "S72.000",
}


def pick_site(
    book: Book, types: tuple[str, ...], exclude: tuple[int, ...] = ()
) -> SiteProfile | None:
    """A site of one of ``types`` (not in ``exclude``), chosen with probability ∝ its size."""
    options = [s for s in book.world.sites if s.site_type in types and s.index not in exclude]
    if not options:
        return None
    sizes = np.array([s.settlements for s in options], dtype=np.float64)
    return options[int(book.rng.choice(len(options), p=sizes / sizes.sum()))]


def visit_of(site: SiteProfile) -> int:
    """The visit type of an ordinary incident settlement at a site."""
    return PHARMACY if site.site_type == "pharmacy" else OUTPATIENT


def sites_for(item: Drug | Service) -> tuple[str, ...]:
    """Site types where an item is billed: drugs anywhere, services at hospitals and clinics."""
    if isinstance(item, Drug):
        return ("hospital", "clinic", "pharmacy")
    return ("hospital",) if item.code in HOSPITAL_ONLY else ("hospital", "clinic")


def item_dx(book: Book, item: Drug | Service) -> str:
    """A diagnosis that goes with an item (matching a drug's indications)."""
    if isinstance(item, Drug):
        return book.world.catalog.dx_for(item.indications)
    return SERVICE_DX.get(item.code, "R10.400")


def affordable(drug: Drug, qty: int, limit: int = 7_000) -> bool:
    """Whether ``qty`` units cost less than ``limit`` RMB (pharmacy incidents stay < 8000)."""
    return float(drug.typical_unit_price) * qty < limit


def ages_fit(items: list[Drug | Service]) -> tuple[int, int]:
    """The age range every item allows."""
    low = max((i.min_age or 0) for i in items)
    high = min((i.max_age if i.max_age is not None else 95) for i in items)
    return low, high


def mid_age(low: int, high: int, preferred: int = 45) -> int:
    """An age within [low, high], near ``preferred``, two years inside the bounds if possible."""
    age = min(max(preferred, low + 2), high - 2)
    return max(low, min(age, high))


def place_one(
    book: Book,
    types: tuple[str, ...],
    fees: list[Fee],
    dx: str,
    gender: str | None,
    age: int,
    birthday: bool = False,
) -> int | None:
    """Rewrite one clean settlement at a site of ``types`` into a fresh patient's visit with
    ``fees`` (pharmacies take drugs only); its row, or None when no site had one left."""
    if any(f.code in book.world.kb.services for f in fees):
        types = tuple(t for t in types if t != "pharmacy")
    site = pick_site(book, types)
    if site is None:
        return None
    row = book.take(site.index, visit_of(site))
    if row is None:
        return None
    book.rewrite(row, book.patient(gender, age, book.admit_date(row), birthday), dx, fees)
    return row
