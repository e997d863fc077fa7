"""Model-only fraud: claims no rule catches, labelled ``other``, learnable from their own fields.

About 1% of hospital and clinic settlements are altered in one of four ways, each keeping every
rule of docs/rules.md satisfied:

- ``UPCODED``: a stay billed under a heavier (surgical) DRG group than its diagnosis warrants,
  without comorbidity, its services raised to their per-day limits;
- ``INFLATED``: every unit price 1.5–3× the catalogue's typical price (amount = qty × price);
- ``PHANTOM_DAYS``: a stay stretched to 2–3× its length, bed days = the longer stay, the other
  services left as they were;
- ``MISMATCHED``: MRI, CT, endoscopy or haemodialysis for a diagnosis that does not call for it.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from fedrisk.synth.clock import DAY, PERIOD_DAYS, age_on, day_date, from_unix_day
from fedrisk.synth.tables import INPATIENT
from fedrisk.synth.templates import BED, HEAVY_SERVICES
from fedrisk.synth.world import World

UPCODED: Final = 1
INFLATED: Final = 2
PHANTOM_DAYS: Final = 3
MISMATCHED: Final = 4
FRAUD_KINDS: Final = {
    UPCODED: "upcoded",
    INFLATED: "inflated",
    PHANTOM_DAYS: "phantom",
    MISMATCHED: "mismatched",
}
FRAUD_SHARE: Final = 0.01


def inject_fraud(world: World, rng: np.random.Generator) -> dict[str, int]:
    """Alter about 1% of the hospital and clinic settlements; returns counts per kind."""
    s = world.sett
    doctors = np.array([site.has_doctors for site in world.sites])[s.site]
    candidates = np.flatnonzero(doctors & ~world.reserved)
    want = round(FRAUD_SHARE * len(candidates))
    if want == 0:
        return {}
    stays = candidates[s.visit[candidates] == INPATIENT]
    visits = candidates[s.visit[candidates] != INPATIENT]
    n_stay = min(len(stays), round(want * 0.35))
    picked_stays = rng.permutation(stays)[:n_stay]
    picked_visits = rng.permutation(np.concatenate([visits, np.setdiff1d(stays, picked_stays)]))
    picked_visits = picked_visits[: want - n_stay]
    counts = dict.fromkeys(FRAUD_KINDS.values(), 0)
    for i, row in enumerate(picked_stays.tolist()):
        done = (_upcode if i % 2 == 0 else _phantom)(world, row, rng)
        if done:
            _mark(world, row, done, counts)
    for i, row in enumerate(picked_visits.tolist()):
        done = (_inflate if i % 2 == 0 else _mismatch)(world, row, rng)
        if done:
            _mark(world, row, done, counts)
    return counts


def _mark(world: World, row: int, kind: int, counts: dict[str, int]) -> None:
    world.fraud[row] = kind
    world.reserved[row] = True
    counts[FRAUD_KINDS[kind]] += 1


def _template_codes(world: World, row: int) -> set[str]:
    t = world.sett.template[row]
    return {spec.code for spec in world.catalog.visits[int(t)].template.lines} if t >= 0 else set()


def _upcode(world: World, row: int, rng: np.random.Generator) -> int:
    s, lines, kb = world.sett, world.lines, world.kb
    t = world.catalog.visits[int(s.template[row])].template
    if not t.upcode:
        return 0
    los = int((s.discharge[row] // DAY) - (s.admit[row] // DAY))
    s.drg[row] = world.drg(f"{t.upcode}1")
    s.dx[row] = world.dx(world.dx.values[int(s.dx[row])].split("|")[0])
    for line in lines.of(row):
        code = world.catalog.items.codes[lines.get(line, "item")]
        service = kb.services.get(code)
        if service is not None and code != BED and service.max_per_day > 1:
            qty = service.max_per_day * los
            lines.set(line, "qty", qty)
            lines.set(line, "amount", qty * lines.get(line, "price"))
    return UPCODED


def _phantom(world: World, row: int, rng: np.random.Generator) -> int:
    s, lines = world.sett, world.lines
    admit_day = int(s.admit[row] // DAY)
    los = int(s.discharge[row] // DAY) - admit_day
    longer = min(round(los * rng.uniform(2.0, 3.0)), PERIOD_DAYS - 1 - admit_day)
    if longer < los + 2:
        return _inflate(world, row, rng)
    s.discharge[row] += (longer - los) * DAY
    bed = world.catalog.item(BED)
    for line in lines.of(row):
        if lines.get(line, "item") == bed:
            lines.set(line, "qty", longer)
            lines.set(line, "amount", longer * lines.get(line, "price"))
    return PHANTOM_DAYS


def _inflate(world: World, row: int, rng: np.random.Generator) -> int:
    lines = world.lines
    factor = rng.uniform(1.5, 3.0)
    for line in lines.of(row):
        price = round(lines.get(line, "price") * factor)
        lines.set(line, "price", price)
        lines.set(line, "amount", price * lines.get(line, "qty"))
    return INFLATED


def _mismatch(world: World, row: int, rng: np.random.Generator) -> int:
    s, kb = world.sett, world.kb
    present = _template_codes(world, row)
    present |= {world.catalog.items.codes[world.lines.get(i, "item")] for i in world.lines.of(row)}
    admit = day_date(int(s.admit[row] // DAY))
    age = age_on(from_unix_day(int(world.pop.birth[int(s.patient[row])])), admit)
    options = []
    for code in HEAVY_SERVICES:
        service = kb.services.get(code)
        if service is None or code in present or service.gender is not None:
            continue
        if (service.min_age or 0) <= age and (service.max_age is None or age <= service.max_age):
            options.append(code)
    if not options:
        return _inflate(world, row, rng)
    chosen = rng.permutation(len(options))[: 1 + int(rng.random() < 0.3)]
    for k in sorted(chosen.tolist()):
        item = world.catalog.item(options[k])
        price = int(world.catalog.items.price[item])
        world.lines.add(row, item, 1, price, int(s.admit[row]))
    return MISMATCHED
