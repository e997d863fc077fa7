"""The risk model's features for one claim at a time, as :mod:`.features` computes them in SQL.

PreCheck scores a claim in well under a millisecond, so the features of :data:`.features.SPEC`
are computed here from the claim and a :class:`FeatureContext` — the node-wide aggregates the
SQL pipeline uses (how often each item and DRG group go with a diagnosis, each DRG group's
median stay, each doctor's volume and amounts, each patient's earlier settlements), built once
from the store. For a settlement already in the store (``in_store=True``) the result equals the
SQL pipeline's (``tests/test_claimfeatures.py`` checks every stored settlement); a new claim is
counted in the aggregates as if it were stored, which is what screening would compute once it is.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from fedrisk.models.features import LINE_FEATURES, SPEC
from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.catalogue import SINGLE_SITE
from fedrisk.models.rules.claimcheck import Claim

NAN = math.nan
# Store fields the context is built from.
READS = {
    "settlements": (
        "settlement_id",
        "patient_pseudonym",
        "visit_type",
        "admit_time",
        "discharge_time",
        "principal_diagnosis",
        "drg_code",
        "doctor_pseudonym",
        "total_amount",
        "settle_time",
    ),
    "lines": ("settlement_id", "item_code", "days_supply"),
}


@dataclass
class _Patient:
    """One patient's settlements in (settle_time, settlement_id) order, with running sums."""

    keys: list[tuple[datetime, str]] = field(default_factory=list)
    amounts: list[Decimal] = field(default_factory=list)
    supply: list[int] = field(default_factory=list)


@dataclass
class FeatureContext:
    """Node-wide aggregates of the stored settlements."""

    dx: Counter[str | None]
    dx_drg: Counter[tuple[str | None, str]]
    item_dx: Counter[tuple[str, str | None]]
    drg_stays: dict[str, list[int]]  # sorted stay lengths per DRG group
    doctor_count: Counter[str | None]
    doctor_sum: dict[str | None, Decimal]
    patients: dict[str, _Patient]

    @staticmethod
    def from_tables(settlements: pa.Table, lines: pa.Table) -> FeatureContext:
        """Aggregates of the stored settlements (the columns of :data:`READS`)."""
        items: dict[str, set[str]] = defaultdict(set)
        supply: Counter[str] = Counter()
        for row in lines.to_pylist():
            items[row["settlement_id"]].add(row["item_code"])
            supply[row["settlement_id"]] += row["days_supply"] or 0
        context = FeatureContext(
            Counter(),
            Counter(),
            Counter(),
            defaultdict(list),
            Counter(),
            defaultdict(Decimal),
            defaultdict(_Patient),
        )
        rows = sorted(settlements.to_pylist(), key=lambda r: (r["settle_time"], r["settlement_id"]))
        for row in rows:
            context._add(row, items[row["settlement_id"]], supply[row["settlement_id"]])
        for stays in context.drg_stays.values():
            stays.sort()
        return context

    def _add(self, row: dict[str, object], items: Iterable[str], supply: int) -> None:
        dx = row["principal_diagnosis"]
        assert dx is None or isinstance(dx, str)
        drg, doctor, amount = str(row["drg_code"]), row["doctor_pseudonym"], row["total_amount"]
        assert isinstance(amount, Decimal) and (doctor is None or isinstance(doctor, str))
        self.dx[dx] += 1
        self.dx_drg[(dx, drg)] += 1
        for item in items:
            self.item_dx[(item, dx)] += 1
        self.drg_stays[drg].append(_los(row["admit_time"], row["discharge_time"]))
        self.doctor_count[doctor] += 1
        self.doctor_sum[doctor] += amount
        patient = self.patients[str(row["patient_pseudonym"])]
        settle, settlement = row["settle_time"], str(row["settlement_id"])
        assert isinstance(settle, datetime)
        patient.keys.append((settle, settlement))
        patient.amounts.append(amount)
        patient.supply.append(supply)


def claim_vector(
    claim: Claim,
    context: FeatureContext,
    kb: KnowledgeBase,
    hits: Iterable[str],
    in_store: bool = False,
) -> NDArray[np.float64]:
    """The claim's features in :data:`SPEC` order (NaN where SQL gives NULL)."""
    los = _los(claim.admit_time, claim.discharge_time)
    values = _claim_part(claim, los)
    values.update(_line_part(claim, kb, max(los, 1)))
    values.update(_context_part(claim, context, 0 if in_store else 1, los))
    hit = set(hits)
    for name, rule in _HIT_FEATURES:
        values[name] = float(rule in hit)
    return np.array([values[name] for name in SPEC.names], dtype=np.float64)


_HIT_FEATURES = tuple((f"hits_{rule}", rule) for rule in SINGLE_SITE)


def _los(admit: object, discharge: object) -> int:
    if not isinstance(admit, datetime) or not isinstance(discharge, datetime):
        return 0
    return (discharge.date() - admit.date()).days


def _claim_part(claim: Claim, los: int) -> dict[str, float]:
    total = float(claim.total_amount)
    return {
        "age": float(claim.age),
        "is_female": float(claim.gender == "F"),
        "is_inpatient": float(claim.visit_type == "inpatient"),
        "los_days": float(los),
        "n_diagnoses": float(len("|".join(claim.diagnoses).split("|"))),
        "total_amount": total,
        "fund_share": float(claim.fund_paid) / total if total else NAN,
        "amount_per_day": total / max(los, 1),
    }


def _line_part(claim: Claim, kb: KnowledgeBase, days: int) -> dict[str, float]:
    """The line features, in one pass over the lines (PreCheck computes them for every call)."""
    lines = claim.lines
    if not lines:  # SQL: no fee line, no row to join: every line feature is NULL
        return dict.fromkeys(LINE_FEATURES, NAN)
    amount = typical_sum = service_amount = service_units = Decimal(0)
    has_typical, ratios, saturation = False, [], []
    drugs = services = supply = 0
    for line in lines:
        amount += line.amount
        supply += line.days_supply or 0
        service = kb.services.get(line.item_code)
        priced = kb.drugs.get(line.item_code) or service
        if priced is not None:
            has_typical = True
            typical_sum += line.quantity * priced.typical_unit_price
            if priced.typical_unit_price:
                ratios.append(float(line.unit_price) / float(priced.typical_unit_price))
        if service is not None and service.max_per_day > 0:
            saturation.append(float(line.quantity) / (service.max_per_day * days))
        if line.item_type == "drug":
            drugs += 1
        elif line.item_type == "service":
            services += 1
            service_amount += line.amount
            service_units += line.quantity
    return {
        "n_lines": float(len(lines)),
        "n_drug_lines": float(drugs),
        "n_service_lines": float(services),
        "price_index": float(amount) / float(typical_sum) if has_typical and typical_sum else NAN,
        "max_price_ratio": max(ratios) if ratios else NAN,
        "service_saturation": max(saturation) if saturation else NAN,
        "service_amount_per_day": float(service_amount) / days if services else NAN,
        "service_units_per_day": float(service_units) / days if services else NAN,
        "supply_days": float(supply),
    }


def _context_part(claim: Claim, context: FeatureContext, extra: int, los: int) -> dict[str, float]:
    dx = claim.principal_diagnosis
    items = {line.item_code for line in claim.lines}
    dx_n = context.dx[dx] + extra
    shares = [(context.item_dx[(item, dx)] + extra) / dx_n for item in items]
    doctor = claim.doctor
    count = context.doctor_count[doctor] + extra
    total = context.doctor_sum[doctor] + (claim.total_amount if extra else Decimal(0))
    before = _before(claim, context)
    return {
        "min_item_dx_share": min(shares) if shares else NAN,
        "drg_dx_share": (context.dx_drg[(dx, claim.drg_code)] + extra) / dx_n,
        "los_vs_drg": _los_vs_drg(los, context.drg_stays.get(claim.drg_code, []), extra),
        "prior_visits": float(before[0]),
        "prior_spend": float(before[1]),
        "days_since_last_visit": before[2],
        "doctor_settlements": float(count),
        "amount_vs_doctor_mean": (
            float(claim.total_amount) / float(total) * count if total else NAN
        ),
        "prior_supply_days": float(before[3]),
    }


def _before(claim: Claim, context: FeatureContext) -> tuple[int, Decimal, float, int]:
    """Visits, spend, days since the last visit, and supply of the patient before the claim."""
    patient = context.patients.get(claim.patient)
    settle = claim.settle_time
    if patient is None or settle is None:
        return 0, Decimal(0), NAN, 0
    n = bisect.bisect_left(patient.keys, (settle, claim.settlement_id))
    if n == 0:
        return 0, Decimal(0), NAN, 0
    last = patient.keys[n - 1][0]
    spend = sum(patient.amounts[:n], Decimal(0))
    return n, spend, float((settle.date() - last.date()).days), sum(patient.supply[:n])


def _los_vs_drg(los: int, stays: list[int], extra: int) -> float:
    """The stay's length over its DRG group's median stay (the claim's own stay counted in
    when ``extra``)."""
    median = _median_with(stays, los) if extra else _median(stays)
    return los / median if median else NAN


def _median(ordered: list[int]) -> float:
    if not ordered:
        return NAN
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _median_with(ordered: list[int], value: int) -> float:
    """The median of ``ordered`` (sorted) with ``value`` inserted, without copying it: a DRG
    group holds up to ~17,000 stays here, and sorting them for each PreCheck call cost ~50 us."""
    at = bisect.bisect_left(ordered, value)

    def nth(i: int) -> int:  # the i-th of the merged list
        return ordered[i] if i < at else value if i == at else ordered[i - 1]

    middle = (len(ordered) + 1) // 2
    return nth(middle) if len(ordered) % 2 == 0 else (nth(middle - 1) + nth(middle)) / 2
