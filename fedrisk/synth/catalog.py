"""The case mix checked against a knowledge base: item tables, visit kinds and drug groups.

``build_catalog`` keeps only what the knowledge base in use allows: a line whose item is not in
the KB, whose sex or age range conflicts with the template's, whose drug indications miss one of
the template's diagnoses, or which interacts with an earlier drug of the template is dropped;
quantities are capped so that units, days of supply (``quantity × days_per_unit``) and services
per day stay within their limits. Clean rows drawn from the result respect the KB by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from fedrisk.models.kb import Drug, KnowledgeBase, Service
from fedrisk.synth.casemix import INPATIENT, OUTPATIENT
from fedrisk.synth.casemix_pharmacy import PHARMACY
from fedrisk.synth.templates import (
    BED,
    COMORBIDITIES,
    EXTRA_DX,
    HOSPITAL_ONLY,
    INPATIENT_SHARE,
    LineSpec,
    Template,
)


def cents(amount: Decimal) -> int:
    """An amount in RMB as integer cents."""
    return int((amount * 100).to_integral_value())


@dataclass(frozen=True)
class Items:
    """Every code a fee line may name: the KB's drugs first, then its services."""

    codes: tuple[str, ...]
    names: tuple[str, ...]
    is_drug: npt.NDArray[np.bool_]
    price: npt.NDArray[np.int64]
    index: dict[str, int]


@dataclass(frozen=True)
class Visit:
    """A template checked for one site type, with its weight there and its drug group."""

    index: int
    site_type: str
    template: Template
    weight: float
    group: int


@dataclass(frozen=True)
class Catalog:
    """What the clean bulk is drawn from."""

    kb: KnowledgeBase
    items: Items
    visits: tuple[Visit, ...]
    groups: int
    dx_codes: tuple[str, ...]

    def for_site_type(self, site_type: str) -> list[Visit]:
        """The visit kinds of one site type (weights > 0)."""
        return [v for v in self.visits if v.site_type == site_type and v.weight > 0]

    def item(self, code: str) -> int:
        """The item index of a code."""
        return self.items.index[code]

    def dx_for(self, prefixes: tuple[str, ...]) -> str:
        """A diagnosis code matching one of the indication prefixes (any code when empty)."""
        if not prefixes:
            return self.dx_codes[0]
        for code in self.dx_codes:
            if any(code.startswith(p) for p in prefixes):
                return code
        return code_for_prefix(prefixes[0])

    def dx_not_matching(self, prefixes: tuple[str, ...], salt: int = 0) -> str:
        """A diagnosis code matching none of the prefixes (the ``salt``-th such code, cycling)."""
        others = [c for c in self.dx_codes if not any(c.startswith(p) for p in prefixes)]
        return others[salt % len(others)]


def code_for_prefix(prefix: str) -> str:
    """A valid ICD-10 code starting with an indication prefix (``L`` → ``L30.900``)."""
    digits = "".join(ch for ch in prefix[1:] if ch.isdigit())
    base = prefix[0] + (digits + "30")[:2] if len(digits) < 2 else prefix[:3]
    return base + ".900"


def _items(kb: KnowledgeBase) -> Items:
    codes = tuple(kb.drugs) + tuple(kb.services)
    names = tuple(kb.drugs[c].name for c in kb.drugs) + tuple(
        kb.services[c].name for c in kb.services
    )
    prices = [cents(kb.drugs[c].typical_unit_price) for c in kb.drugs]
    prices += [cents(kb.services[c].typical_unit_price) for c in kb.services]
    is_drug = np.array([True] * len(kb.drugs) + [False] * len(kb.services), dtype=np.bool_)
    return Items(
        codes,
        names,
        is_drug,
        np.array(prices, dtype=np.int64),
        {c: i for i, c in enumerate(codes)},
    )


def drug_cap(drug: Drug) -> int:
    """The largest clean quantity of a drug on one line: units and days of supply both fit."""
    return min(drug.max_units, drug.max_days_supply // max(drug.days_per_unit, 1))


def _cap(spec: LineSpec, cap: int) -> LineSpec | None:
    keep = [i for i, q in enumerate(spec.q) if 1 <= q <= cap]
    if not keep:
        return replace(spec, q=(cap,), w=None) if cap >= 1 else None
    weights = None if spec.w is None else tuple(spec.w[i] for i in keep)
    return replace(spec, q=tuple(spec.q[i] for i in keep), w=weights)


def _tighten(t: Template, kb: KnowledgeBase, site_type: str) -> Template | None:
    gender, low, high = t.gender, t.min_age, t.max_age
    specs: list[LineSpec] = []
    drugs: list[str] = []
    for spec in t.lines:
        if site_type == "clinic" and spec.code in HOSPITAL_ONLY:
            continue
        item: Drug | Service | None = kb.drugs.get(spec.code) or kb.services.get(spec.code)
        if item is None or (item.gender and gender and item.gender != gender):
            continue
        new_low = max(low, item.min_age or 0)
        new_high = high if item.max_age is None else min(high, item.max_age)
        if new_low > new_high:
            continue
        if isinstance(item, Drug):
            if item.indications and not all(
                any(code.startswith(p) for code in dx.split("|") for p in item.indications)
                for dx in t.dx
            ):
                continue
            if any(kb.interaction(spec.code, other) for other in drugs):
                continue
            capped = _cap(spec, drug_cap(item))
        else:
            days = 1 if spec.per_day else (t.los[0] if t.visit == "inpatient" else 1)
            capped = _cap(spec, item.max_per_day * days)
        if capped is None:
            continue
        if isinstance(item, Drug):
            drugs.append(spec.code)
        gender, low, high = gender or item.gender, new_low, new_high
        specs.append(capped)
    if not specs or (t.visit == "pharmacy" and not drugs):
        return None
    if t.visit == "inpatient" and specs[0].code != BED:
        return None
    return replace(t, lines=tuple(specs), gender=gender, min_age=low, max_age=high)


def _groups(visits: list[tuple[str, Template, float]], kb: KnowledgeBase) -> dict[str, int]:
    """Drug groups: drugs prescribed together in some template share a group (union-find)."""
    parent: dict[str, str] = {}

    def find(code: str) -> str:
        while parent.setdefault(code, code) != code:
            code = parent[code]
        return code

    for _, t, _ in visits:
        codes = [s.code for s in t.lines if s.code in kb.drugs]
        for code in codes:
            find(code)
        for a, b in pairwise(codes):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = sorted({find(c) for c in parent})
    return {code: roots.index(find(code)) for code in sorted(parent)}


def build_catalog(kb: KnowledgeBase) -> Catalog:
    """Check the case mix against ``kb``; see the module docstring."""
    raw: list[tuple[str, Template, float]] = []
    for t in OUTPATIENT:
        raw.append(("hospital", t, t.weight))
        raw.append(("clinic", t, t.clinic_weight))
    raw += [("hospital", t, t.weight) for t in INPATIENT]
    raw += [("pharmacy", t, t.weight) for t in PHARMACY]
    checked: list[tuple[str, Template, float]] = []
    for site_type, t, weight in raw:
        tight = _tighten(t, kb, site_type) if weight > 0 else None
        if tight is not None:
            checked.append((site_type, tight, weight))
    out_sum = sum(w for s, t, w in checked if s == "hospital" and t.visit == "outpatient")
    in_sum = sum(w for s, t, w in checked if s == "hospital" and t.visit == "inpatient")
    groups = _groups(checked, kb)
    visits = []
    for i, (site_type, t, weight) in enumerate(checked):
        if site_type == "hospital" and in_sum > 0 and out_sum > 0:
            share = INPATIENT_SHARE if t.visit == "inpatient" else 1 - INPATIENT_SHARE
            weight = share * weight / (in_sum if t.visit == "inpatient" else out_sum)
        drug_codes = [s.code for s in t.lines if s.code in kb.drugs]
        group = groups[drug_codes[0]] if drug_codes else -1
        visits.append(Visit(i, site_type, t, weight, group))
    dx = dict.fromkeys(code for _, t, _ in checked for combo in t.dx for code in combo.split("|"))
    dx.update(dict.fromkeys(COMORBIDITIES + EXTRA_DX))
    return Catalog(kb, _items(kb), tuple(visits), len(set(groups.values())), tuple(dx))
