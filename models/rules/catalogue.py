"""What rules exist, which parameters each takes and where each is evaluated.

The catalogue is code (it mirrors docs/rules.md); the values an operator sets live in a rule
pack (:mod:`fedrisk.models.rules.pack`). A rule is *single-site* when one node can evaluate it
over its own store, *cross-site* when it needs the federation (blind matching, statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

ParamKind = Literal["int", "decimal", "bool"]
ParamValue = int | Decimal | bool
Scope = Literal["single_site", "cross_site"]


@dataclass(frozen=True)
class Param:
    """One parameter of a rule: its kind, its smallest allowed value and its default."""

    name: str
    kind: ParamKind
    default: ParamValue
    minimum: int | None = None
    doc: str = ""


@dataclass(frozen=True)
class RuleSpec:
    """A rule of the library: id, scope, default severity and parameters.

    ``severity_from_kb`` rules take each flag's severity from the knowledge base (interaction
    pairs carry their own), so their pack entry sets no severity.
    """

    rule_id: str
    scope: Scope
    severity: str | None
    params: tuple[Param, ...] = ()
    severity_from_kb: bool = False
    summary: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


CATALOGUE: tuple[RuleSpec, ...] = (
    RuleSpec("gender_conflict", "single_site", "block", summary="item restricted to one sex"),
    RuleSpec("age_conflict", "single_site", "block", summary="item outside its age range"),
    RuleSpec("over_quantity", "single_site", "warn", summary="units or days above the limit"),
    RuleSpec("indication_mismatch", "single_site", "warn", summary="drug fits no diagnosis"),
    RuleSpec(
        "interaction",
        "single_site",
        None,
        severity_from_kb=True,
        summary="two drugs that must not be combined",
    ),
    RuleSpec("duplicate_trace_code", "single_site", "block", summary="one box settled twice"),
    RuleSpec(
        "cross_site_over_quantity",
        "cross_site",
        "warn",
        (Param("window_days", "int", 30, 1, "window from the first settlement, in days"),),
        summary="days of supply over sites in a window",
    ),
    RuleSpec(
        "monthly_pharmacy_spend",
        "cross_site",
        "warn",
        (Param("limit", "decimal", Decimal("8000.00"), 0, "RMB in one calendar month, ≥"),),
        summary="pharmacy spend over sites in a month",
    ),
    RuleSpec(
        "batch_prescribing",
        "single_site",
        "warn",
        (
            Param("min_patients", "int", 3, 2, "different patients, at least"),
            Param("window_seconds", "int", 60, 0, "max − min order_time, at most"),
        ),
        summary="one doctor, one monitored drug, many patients at once",
    ),
    RuleSpec(
        "split_admission",
        "single_site",
        "warn",
        (Param("window_days", "int", 15, 0, "readmission gap after discharge, at most"),),
        summary="readmission with the same principal diagnosis",
    ),
    RuleSpec(
        "prescriber_outlier",
        "cross_site",
        "warn",
        (Param("factor", "decimal", Decimal(20), 1, "× the federation mean, above"),),
        summary="doctor far above peers for one drug",
    ),
    RuleSpec(
        "pharmacist_multi_site",
        "cross_site",
        "warn",
        (Param("window_minutes", "int", 10, 0, "between settlements at two sites, at most"),),
        summary="one pharmacist at two sites at once",
    ),
    RuleSpec("data_quality", "single_site", "info", summary="contract fault or unknown doctor"),
)

RULES: dict[str, RuleSpec] = {spec.rule_id: spec for spec in CATALOGUE}
SINGLE_SITE = tuple(spec.rule_id for spec in CATALOGUE if spec.scope == "single_site")
