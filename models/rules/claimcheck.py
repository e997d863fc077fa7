"""The single-site rules for one claim at a time, against the patient's and doctor's history.

PreCheck (事前提醒) answers in milliseconds, before an order is placed; planning the rule
engine's SQL costs ~40 ms a claim, so one claim is checked here in plain Python instead. The
semantics are those of docs/rules.md, exactly as :mod:`.single_site` evaluates them over a
whole store: ``tests/test_claimcheck.py`` checks every stored settlement of generated data
both ways and requires the same hits. What needs more than the claim — a trace code settled
before, a doctor's other orders, the patient's earlier stays — comes from a :class:`History`.

The one difference by design: a claim that breaks the data contract is refused before it is
checked (PreCheck answers INVALID_ARGUMENT naming the field), so ``data_quality`` here only
reports a claim without a real prescriber.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from fedrisk.models.kb import Drug, KnowledgeBase, Service
from fedrisk.models.rules.pack import RulePack

SEVERITY_RANK = {"info": 1, "warn": 2, "block": 3}


# Claim and ClaimLine are built for every PreCheck call: a frozen dataclass's __init__ costs
# ~3.5x a plain one with slots (it sets each field through object.__setattr__). No rule
# assigns to them; they are values, read only.
@dataclass(slots=True)
class ClaimLine:
    line_no: int
    item_type: str
    item_code: str
    trace_code: str | None
    quantity: Decimal
    days_supply: int | None
    order_time: datetime
    unit_price: Decimal = Decimal(0)  # the risk model's inputs; no rule reads them
    amount: Decimal = Decimal(0)


@dataclass(slots=True)
class Claim:
    """One settlement as the rules see it: pseudonyms, never raw identifiers."""

    site_id: str
    settlement_id: str
    site_type: str
    patient: str
    gender: str
    age: int
    visit_type: str
    admit_time: datetime
    discharge_time: datetime | None
    diagnoses: tuple[str, ...]
    doctor: str | None
    doctor_status: str  # ok | unknown | missing
    lines: tuple[ClaimLine, ...]
    # The risk model's inputs; no rule reads them.
    drg_code: str = ""
    total_amount: Decimal = Decimal(0)
    fund_paid: Decimal = Decimal(0)
    settle_time: datetime | None = None

    @property
    def principal_diagnosis(self) -> str | None:
        return self.diagnoses[0] if self.diagnoses else None

    @property
    def stay_days(self) -> int:
        if self.visit_type == "inpatient" and self.discharge_time is not None:
            return max(1, (self.discharge_time.date() - self.admit_time.date()).days)
        return 1


@dataclass(frozen=True)
class Stay:
    settlement_id: str
    admit_time: datetime
    discharge_time: datetime


@dataclass(frozen=True)
class Order:
    settlement_id: str
    patient: str
    order_time: datetime


class History(Protocol):
    """What the node knows of other settlements (never including the claim being checked)."""

    def trace_settlements(self, trace_code: str, exclude: str) -> list[str]:
        """Settlements other than ``exclude`` with a line of this trace code."""
        ...

    def doctor_orders(self, doctor: str, item_code: str, exclude: str) -> list[Order]:
        """Orders of a monitored drug by one doctor, on settlements other than ``exclude``."""
        ...

    def stays(self, patient: str, diagnosis: str, exclude: str) -> list[Stay]:
        """The patient's inpatient stays with this principal diagnosis, but ``exclude``."""
        ...

    def month_spend(self, patient: str, month: str, exclude: str) -> tuple[Decimal, int]:
        """The patient's pharmacy spend at this node in ``month`` (YYYY-MM) and how many
        settlements make it, ``exclude`` left out."""
        ...

    def cross_site_spend(self, patient: str, month: str) -> int:
        """How many sites the last cross-site matching found the patient's pharmacy spend of
        ``month`` at, when it was over the limit there (0: not known to be over)."""
        ...

    def cross_site_supply(self, patient: str, item_code: str) -> list[SupplyWindow]:
        """The windows in which the last cross-site matching found the patient's days of supply
        of the drug over its limit, summed over sites."""
        ...


@dataclass(frozen=True)
class SupplyWindow:
    """A window of days (from ``start``, inclusive) found over the limit across ``sites``."""

    start: date
    days: int
    sites: int

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Hit:
    rule_id: str
    severity: str
    evidence: str  # JSON


def check_claim(
    claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack, context: bool = True
) -> list[Hit]:
    """Every enabled single-site rule the claim breaks, in catalogue order; with ``context``,
    also what this node alone already knows of the cross-site rules (:data:`CONTEXT_CHECKS`)."""
    hits = []
    checks = {**CHECKS, **(CONTEXT_CHECKS if context else {})}
    for rule_id, check in checks.items():
        if not pack.enabled(rule_id):
            continue
        found = check(claim, history, kb, pack)
        if found is not None:
            severity, evidence = found
            hits.append(Hit(rule_id, severity, json.dumps(evidence, ensure_ascii=False)))
    return hits


def decision(hits: Sequence[Hit]) -> str:
    """allow when nothing is hit, else the most severe hit's severity (info counts as allow)."""
    worst = max((SEVERITY_RANK[h.severity] for h in hits), default=0)
    return {0: "allow", 1: "allow", 2: "warn", 3: "block"}[worst]


Found = tuple[str, dict[str, object]] | None


def _gender(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    for line in claim.lines:
        item = _item(kb, line)
        if item is not None and item.gender is not None and item.gender != claim.gender:
            evidence = {
                "line_no": line.line_no,
                "item_code": line.item_code,
                "restriction": f"gender={item.gender}",
                "patient_gender": claim.gender,
            }
            return _severity(pack, "gender_conflict"), evidence
    return None


def _age(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    for line in claim.lines:
        item = _item(kb, line)
        if item is None:
            continue
        if item.min_age is not None and claim.age < item.min_age:
            restriction = f"min_age={item.min_age}"
        elif item.max_age is not None and claim.age > item.max_age:
            restriction = f"max_age={item.max_age}"
        else:
            continue
        evidence = {
            "line_no": line.line_no,
            "item_code": line.item_code,
            "restriction": restriction,
            "patient_age": claim.age,
        }
        return _severity(pack, "age_conflict"), evidence
    return None


def _over_quantity(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    units: dict[str, Decimal] = defaultdict(Decimal)
    days: dict[str, Decimal] = defaultdict(Decimal)
    first: dict[str, ClaimLine] = {}
    for line in claim.lines:
        units[line.item_code] += line.quantity
        drug = kb.drugs.get(line.item_code) if line.item_type == "drug" else None
        if drug is not None:
            days[line.item_code] += (
                Decimal(line.days_supply)
                if line.days_supply is not None
                else line.quantity * drug.days_per_unit
            )
        first.setdefault(line.item_code, line)
    for code, line in sorted(first.items(), key=lambda kv: kv[1].line_no):
        evidence = _over(claim, kb, line, units[code], days[code])
        if evidence is not None:
            return _severity(pack, "over_quantity"), evidence
    return None


def _over(
    claim: Claim, kb: KnowledgeBase, line: ClaimLine, units: Decimal, days: Decimal
) -> dict[str, object] | None:
    if line.item_type == "drug":
        drug = kb.drugs.get(line.item_code)
        if drug is not None and (units > drug.max_units or days > drug.max_days_supply):
            restriction = (
                f"max_units={drug.max_units}"
                if units > drug.max_units
                else f"max_days_supply={drug.max_days_supply}"
            )
            return {
                "item_code": line.item_code,
                "restriction": restriction,
                "units": float(units),
                "days_supply": float(days),
            }
        return None
    service = kb.services.get(line.item_code)
    if service is not None and units > service.max_per_day * claim.stay_days:
        return {
            "item_code": line.item_code,
            "restriction": f"max_per_day={service.max_per_day} x {claim.stay_days} stay days",
            "units": float(units),
            "stay_days": claim.stay_days,
        }
    return None


def _indication(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    if not claim.diagnoses:
        return None
    for line in claim.lines:
        drug = kb.drugs.get(line.item_code) if line.item_type == "drug" else None
        if drug is None or not drug.indications:
            continue
        if not any(dx.startswith(p) for dx in claim.diagnoses for p in drug.indications):
            evidence = {
                "line_no": line.line_no,
                "item_code": line.item_code,
                "restriction": "indications=" + "|".join(drug.indications),
                "diagnosis_codes": "|".join(claim.diagnoses),
            }
            return _severity(pack, "indication_mismatch"), evidence
    return None


def _interaction(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    drugs = sorted(
        (line for line in claim.lines if line.item_type == "drug"), key=lambda line: line.line_no
    )
    worst: tuple[int, int, dict[str, object], str] | None = None
    for i, a in enumerate(drugs):
        for b in drugs[i + 1 :]:
            pair = kb.interaction(a.item_code, b.item_code)
            if pair is None or a.line_no == b.line_no:
                continue
            severity = pair.severity
            rank = (SEVERITY_RANK[severity], -a.line_no)
            evidence = {
                "line_no": a.line_no,
                "item_code": a.item_code,
                "other_line_no": b.line_no,
                "other_item_code": b.item_code,
                "restriction": f"not with {b.item_code}",
                "kb_severity": severity,
            }
            if worst is None or rank > worst[:2]:
                worst = (*rank, evidence, severity)
    return None if worst is None else (worst[3], worst[2])


def _duplicate_trace(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    seen: dict[str, int] = defaultdict(int)
    for line in claim.lines:
        if line.trace_code:
            seen[line.trace_code] += 1
    for line in sorted(claim.lines, key=lambda line: line.line_no):
        if not line.trace_code:
            continue
        others = history.trace_settlements(line.trace_code, claim.settlement_id)
        if others or seen[line.trace_code] > 1:
            evidence = {
                "line_no": line.line_no,
                "item_code": line.item_code,
                "trace_code": line.trace_code,
                "restriction": "a box is settled once",
                "times_settled": len(others) + seen[line.trace_code],
                "other_settlements": sorted(set(others))[:10],
            }
            return _severity(pack, "duplicate_trace_code"), evidence
    return None


def _batch(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    if claim.doctor_status != "ok" or claim.doctor is None:
        return None
    rule = pack.rules["batch_prescribing"]
    least, window = rule.integer("min_patients"), timedelta(seconds=rule.integer("window_seconds"))
    for line in sorted(claim.lines, key=lambda line: line.order_time):
        drug = kb.drugs.get(line.item_code) if line.item_type == "drug" else None
        if drug is None or not drug.monitored:
            continue
        orders = history.doctor_orders(claim.doctor, line.item_code, claim.settlement_id)
        orders += [
            Order(claim.settlement_id, claim.patient, other.order_time)
            for other in claim.lines
            if other.item_code == line.item_code
        ]
        patients = _group_patients(line.order_time, orders, window)
        if patients >= least:
            evidence = {
                "item_code": line.item_code,
                "doctor": claim.doctor,
                "order_time": line.order_time.isoformat(sep=" "),
                "restriction": f"fewer than {least} patients within {window.seconds} s",
                "patients": patients,
            }
            return _severity(pack, "batch_prescribing"), evidence
    return None


def _group_patients(at: datetime, orders: list[Order], window: timedelta) -> int:
    """The most patients in a window [start, start + W] that holds ``at``, over starts at order
    times within W before ``at`` (the rule engine's windows)."""
    best = 0
    for start in {o.order_time for o in orders if at - window <= o.order_time <= at}:
        inside = {o.patient for o in orders if start <= o.order_time <= start + window}
        best = max(best, len(inside))
    return best


def _split(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    dx = claim.principal_diagnosis
    if claim.visit_type != "inpatient" or claim.discharge_time is None or dx is None:
        return None
    limit = timedelta(days=pack.rules["split_admission"].integer("window_days"))
    pairs = []
    for stay in history.stays(claim.patient, dx, claim.settlement_id):
        if stay.discharge_time <= claim.admit_time <= stay.discharge_time + limit:
            pairs.append(("later", stay, claim.admit_time - stay.discharge_time))
        if claim.discharge_time <= stay.admit_time <= claim.discharge_time + limit:
            pairs.append(("earlier", stay, stay.admit_time - claim.discharge_time))
    if not pairs:
        return None
    side, stay, gap = min(pairs, key=lambda p: p[2])
    evidence = {
        "principal_diagnosis": dx,
        "this_stay": side,
        "other_settlement_id": stay.settlement_id,
        "gap_days": round(gap.total_seconds() / 86400, 2),
    }
    return _severity(pack, "split_admission"), evidence


def _data_quality(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    unknown = claim.doctor_status == "unknown"
    missing = claim.doctor_status == "missing" and claim.site_type in ("hospital", "clinic")
    if not (unknown or missing):
        return None
    evidence: dict[str, object] = {
        "field": "doctor_id",
        "restriction": "the prescriber is a person",
        "value": "UNKNOWN" if unknown else "(empty)",
    }
    return _severity(pack, "data_quality"), evidence


def _monthly_spend(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    """The monthly pharmacy-spend limit counts spend at every site, so the spend at this node
    alone reaching it is already a breach (the federated matching adds the other sites')."""
    if claim.visit_type != "pharmacy" or claim.settle_time is None:
        return None
    month = claim.settle_time.strftime("%Y-%m")
    earlier, settlements = history.month_spend(claim.patient, month, claim.settlement_id)
    total = earlier + claim.total_amount
    limit = pack.rules["monthly_pharmacy_spend"].number("limit")
    sites = history.cross_site_spend(claim.patient, month)
    if total < limit and sites:
        return _severity(pack, "monthly_pharmacy_spend"), {
            "month": month,
            "restriction": f"pharmacy spend in a month < {limit}",
            "scope": "all sites: the last cross-site matching found this month over the limit",
            "sites": sites,
        }
    if total < limit:
        return None
    evidence: dict[str, object] = {
        "month": month,
        "spend_at_this_site": float(total),
        "other_settlements_this_month": settlements,
        "restriction": f"pharmacy spend in a month < {limit}",
        "scope": "this site only; other sites come with federated matching",
    }
    return _severity(pack, "monthly_pharmacy_spend"), evidence


def _cross_supply(claim: Claim, history: History, kb: KnowledgeBase, pack: RulePack) -> Found:
    """A drug whose supply to this patient the last cross-site matching found over the limit,
    summed over sites, in a window that the claim's admission date falls in."""
    day = claim.admit_time.date()
    for line in claim.lines:
        if line.item_type != "drug" or line.item_code not in kb.drugs:
            continue
        for window in history.cross_site_supply(claim.patient, line.item_code):
            if window.covers(day):
                limit = kb.drugs[line.item_code].max_days_supply
                return _severity(pack, "cross_site_over_quantity"), {
                    "line_no": line.line_no,
                    "item_code": line.item_code,
                    "window_start": window.start.isoformat(),
                    "window_days": window.days,
                    "sites": window.sites,
                    "restriction": f"days of supply over sites in the window ≤ {limit}",
                    "scope": "all sites: the last cross-site matching",
                }
    return None


def _item(kb: KnowledgeBase, line: ClaimLine) -> Drug | Service | None:
    """The line's catalogue entry: drugs.csv for drugs, services.csv for the rest."""
    if line.item_type == "drug":
        return kb.drugs.get(line.item_code)
    return kb.services.get(line.item_code)


def _severity(pack: RulePack, rule_id: str) -> str:
    return str(pack.rules[rule_id].severity)


CHECKS = {
    "gender_conflict": _gender,
    "age_conflict": _age,
    "over_quantity": _over_quantity,
    "indication_mismatch": _indication,
    "interaction": _interaction,
    "duplicate_trace_code": _duplicate_trace,
    "batch_prescribing": _batch,
    "split_admission": _split,
    "data_quality": _data_quality,
}
# Cross-site rules: what this node's own history already proves, and what the last cross-site
# matching run (the federation's results, kept at this node) found about the patient.
CONTEXT_CHECKS = {
    "cross_site_over_quantity": _cross_supply,
    "monthly_pharmacy_spend": _monthly_spend,
}
