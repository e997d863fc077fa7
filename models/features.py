"""Claim features for the risk model: one pipeline for training and scoring alike.

Every feature is computed in SQL by DuckDB over what the connection calls ``settlements``,
``lines`` and ``rule_flags`` (the node's store and the rule engine's output) and the knowledge
base's tables, one row per settlement:

- the claim itself: age, sex, stay length, diagnoses, amounts, the fund's share;
- amounts against the knowledge base's typical prices (inflated bills);
- how intensively services are billed against their per-day limits and the stay (upcoding,
  phantom bed-days);
- how usual each item and the DRG group are for the principal diagnosis *at this node*
  (services that do not fit the diagnosis);
- the patient's history at the node before this settlement: visits, spend, days of supply;
- the doctor: how many settlements, and this claim against the doctor's mean;
- the hits of every single-site rule.

Training and scoring call :func:`claim_features` on the same store, so a claim gets the same
vector on both paths — bit for bit: sums run over exact decimals, whose result does not depend
on the order in which DuckDB's threads add them (``tests/test_model.py`` checks it).
:data:`SPEC` names the features, in order, with a version that changes whenever the list does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from fedrisk.crypto.canonical import canonical_json
from fedrisk.models.rules.catalogue import SINGLE_SITE

KEY = ("site_id", "settlement_id")

# Store fields the features read (beyond the rule engine's own reads).
READS = {
    "settlements": (
        "site_id",
        "settlement_id",
        "patient_pseudonym",
        "gender",
        "age",
        "visit_type",
        "admit_time",
        "discharge_time",
        "diagnosis_codes",
        "principal_diagnosis",
        "drg_code",
        "doctor_pseudonym",
        "total_amount",
        "fund_paid",
        "settle_time",
    ),
    "lines": (
        "site_id",
        "settlement_id",
        "item_type",
        "item_code",
        "quantity",
        "unit_price",
        "amount",
        "days_supply",
    ),
}


@dataclass(frozen=True)
class FeatureSpec:
    """The names of a model's inputs, in order; all are float64 (NaN when not applicable)."""

    names: tuple[str, ...]

    @property
    def version(self) -> str:
        return hashlib.sha256(canonical_json(list(self.names))).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "features": [{"name": n, "type": "float64"} for n in self.names],
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> FeatureSpec:
        features = data.get("features")
        if not isinstance(features, list):
            raise ValueError("a feature spec lists its features")
        spec = FeatureSpec(tuple(str(f["name"]) for f in features))
        if data.get("version") not in (None, spec.version):
            raise ValueError(f"feature spec version {data.get('version')} does not match its list")
        return spec


_CLAIM = """
SELECT s.site_id, s.settlement_id,
    s.age::DOUBLE AS age,
    (s.gender = 'F')::DOUBLE AS is_female,
    (s.visit_type = 'inpatient')::DOUBLE AS is_inpatient,
    coalesce(date_diff('day', s.admit_time, s.discharge_time), 0)::DOUBLE AS los_days,
    len(string_split(s.diagnosis_codes, '|'))::DOUBLE AS n_diagnoses,
    s.total_amount::DOUBLE AS total_amount,
    (s.fund_paid / nullif(s.total_amount, 0))::DOUBLE AS fund_share,
    (s.total_amount / greatest(date_diff('day', s.admit_time, s.discharge_time), 1))::DOUBLE
        AS amount_per_day,
    s.total_amount AS exact_amount,  -- DECIMAL: its sums do not depend on the order of addition
    s.patient_pseudonym, s.doctor_pseudonym, s.principal_diagnosis, s.drg_code, s.settle_time
FROM settlements s
"""

_LINES = """
SELECT l.site_id, l.settlement_id,
    count(*)::DOUBLE AS n_lines,
    count(*) FILTER (WHERE l.item_type = 'drug')::DOUBLE AS n_drug_lines,
    count(*) FILTER (WHERE l.item_type = 'service')::DOUBLE AS n_service_lines,
    (sum(l.amount) / nullif(sum(l.quantity * k.typical_unit_price::DECIMAL(14, 2)), 0))::DOUBLE
        AS price_index,
    max(l.unit_price / nullif(k.typical_unit_price, 0))::DOUBLE AS max_price_ratio,
    max(l.quantity / (v.max_per_day * greatest(c.los_days, 1)))::DOUBLE AS service_saturation,
    (sum(l.amount) FILTER (WHERE l.item_type = 'service') / greatest(c.los_days, 1))::DOUBLE
        AS service_amount_per_day,
    (sum(l.quantity) FILTER (WHERE l.item_type = 'service') / greatest(c.los_days, 1))::DOUBLE
        AS service_units_per_day,
    coalesce(sum(l.days_supply), 0)::DOUBLE AS supply_days
FROM lines l
JOIN claim c ON c.site_id = l.site_id AND c.settlement_id = l.settlement_id
LEFT JOIN kb_items k ON k.code = l.item_code
LEFT JOIN kb_services v ON v.code = l.item_code AND v.max_per_day > 0
GROUP BY l.site_id, l.settlement_id, c.los_days
"""

# How usual each item is for the principal diagnosis at this node: the share of the
# diagnosis's settlements that bill the item; the claim keeps its least usual item.
_RARITY = """
WITH per_item AS (
    SELECT DISTINCT l.site_id, l.settlement_id, l.item_code, c.principal_diagnosis AS dx
    FROM lines l JOIN claim c ON c.site_id = l.site_id AND c.settlement_id = l.settlement_id
), pair AS (
    SELECT item_code, dx, count(*) AS n FROM per_item GROUP BY ALL
), dx AS (
    SELECT principal_diagnosis AS dx, count(*) AS n FROM claim GROUP BY ALL
)
SELECT p.site_id, p.settlement_id, min(pair.n / d.n)::DOUBLE AS min_item_dx_share
FROM per_item p
JOIN pair ON pair.item_code = p.item_code AND pair.dx IS NOT DISTINCT FROM p.dx
JOIN dx d ON d.dx IS NOT DISTINCT FROM p.dx
GROUP BY ALL
"""

_CONTEXT = """
SELECT site_id, settlement_id,
    (count(*) OVER (PARTITION BY principal_diagnosis, drg_code)
        / count(*) OVER (PARTITION BY principal_diagnosis))::DOUBLE AS drg_dx_share,
    (los_days / nullif(median(los_days) OVER (PARTITION BY drg_code), 0))::DOUBLE AS los_vs_drg,
    (count(*) OVER patient_before)::DOUBLE AS prior_visits,
    coalesce(sum(exact_amount) OVER patient_before, 0)::DOUBLE AS prior_spend,
    date_diff('day', max(settle_time) OVER patient_before, settle_time)::DOUBLE
        AS days_since_last_visit,
    (count(*) OVER (PARTITION BY doctor_pseudonym))::DOUBLE AS doctor_settlements,
    (exact_amount / nullif(sum(exact_amount) OVER (PARTITION BY doctor_pseudonym), 0)
        * count(*) OVER (PARTITION BY doctor_pseudonym))::DOUBLE AS amount_vs_doctor_mean
FROM claim
WINDOW patient_before AS (
    PARTITION BY patient_pseudonym ORDER BY settle_time, settlement_id
    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
)
"""

_HISTORY_SUPPLY = """
SELECT c.site_id, c.settlement_id,
    coalesce(sum(f.supply_days) OVER (
        PARTITION BY c.patient_pseudonym ORDER BY c.settle_time, c.settlement_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0)::DOUBLE AS prior_supply_days
FROM claim c LEFT JOIN line_features f
    ON f.site_id = c.site_id AND f.settlement_id = c.settlement_id
"""

CLAIM_FEATURES = (
    "age",
    "is_female",
    "is_inpatient",
    "los_days",
    "n_diagnoses",
    "total_amount",
    "fund_share",
    "amount_per_day",
)
LINE_FEATURES = (
    "n_lines",
    "n_drug_lines",
    "n_service_lines",
    "price_index",
    "max_price_ratio",
    "service_saturation",
    "service_amount_per_day",
    "service_units_per_day",
    "supply_days",
)
CONTEXT_FEATURES = (
    "drg_dx_share",
    "los_vs_drg",
    "prior_visits",
    "prior_spend",
    "days_since_last_visit",
    "doctor_settlements",
    "amount_vs_doctor_mean",
)
RULE_FEATURES = tuple(f"hits_{rule_id}" for rule_id in SINGLE_SITE)
SPEC = FeatureSpec(
    (
        *CLAIM_FEATURES,
        *LINE_FEATURES,
        "min_item_dx_share",
        *CONTEXT_FEATURES,
        "prior_supply_days",
        *RULE_FEATURES,
    )
)


def claim_features(db: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per settlement: ``site_id``, ``settlement_id`` and the features of :data:`SPEC`.

    Needs the tables ``settlements``, ``lines``, ``rule_flags`` and the knowledge base's
    ``kb_items`` and ``kb_services`` (registered by the rule engine), ordered by settlement.
    """
    db.execute(f"CREATE OR REPLACE TEMP TABLE claim AS {_CLAIM}")
    db.execute(f"CREATE OR REPLACE TEMP TABLE line_features AS {_LINES}")
    hits = ", ".join(
        f"count(*) FILTER (WHERE rule_id = '{rule_id}')::DOUBLE AS hits_{rule_id}"
        for rule_id in SINGLE_SITE
    )
    columns = ", ".join(
        f"coalesce(h.{name}, 0) AS {name}" if name in RULE_FEATURES else f"{_source(name)}.{name}"
        for name in SPEC.names
    )
    return db.sql(
        f"""
        WITH rarity AS ({_RARITY}), context AS ({_CONTEXT}), supply AS ({_HISTORY_SUPPLY}),
        hits AS (SELECT site_id, settlement_id, {hits} FROM rule_flags GROUP BY ALL)
        SELECT c.site_id, c.settlement_id, {columns}
        FROM claim c
        LEFT JOIN line_features l USING (site_id, settlement_id)
        LEFT JOIN rarity r USING (site_id, settlement_id)
        LEFT JOIN context x USING (site_id, settlement_id)
        LEFT JOIN supply p USING (site_id, settlement_id)
        LEFT JOIN hits h USING (site_id, settlement_id)
        ORDER BY c.site_id, c.settlement_id
        """
    ).to_arrow_table()


def _source(name: str) -> str:
    """The alias of the subquery that computes feature ``name``."""
    if name in CLAIM_FEATURES:
        return "c"
    if name in LINE_FEATURES:
        return "l"
    if name in CONTEXT_FEATURES:
        return "x"
    if name in RULE_FEATURES:
        return "h"
    return {"min_item_dx_share": "r", "prior_supply_days": "p"}[name]


def feature_matrix(table: pa.Table, spec: FeatureSpec) -> NDArray[np.float64]:
    """The features of ``spec`` from ``table``, as a float64 matrix (missing values NaN)."""
    missing = [name for name in spec.names if name not in table.column_names]
    if missing:
        raise ValueError(f"the table lacks feature column(s) {', '.join(missing)}")
    columns = [
        table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False) for name in spec.names
    ]
    return np.column_stack(columns).astype(np.float64, copy=False) if columns else np.empty((0, 0))
