"""What PreCheck knows of a node's earlier settlements: indexes in memory, built from the store.

Built once when the server starts (and again on SIGHUP, after an ingest or a matching run),
through the access gate under purpose ``precheck``, from the few fields the per-claim rules
need: trace codes, the orders of monitored drugs per doctor, inpatient stays per patient and
diagnosis, the pharmacy spend per patient and month — and, from this node's latest cross-site
matching results (``HOME/matching/``), the patients the federation found over a cross-site
limit. A lookup is a dictionary access, so a check costs microseconds, not a query.
"""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from fedrisk.models.claimfeatures import READS as FEATURE_READS
from fedrisk.models.claimfeatures import FeatureContext
from fedrisk.models.rules.claimcheck import Order, Stay, SupplyWindow
from fedrisk.node.access import SiteAccess
from fedrisk.node.claims import merge_reads
from fedrisk.node.matching.results import results_files

READS = {
    "settlements": (
        "settlement_id",
        "patient_pseudonym",
        "visit_type",
        "admit_time",
        "discharge_time",
        "principal_diagnosis",
        "doctor_pseudonym",
        "doctor_status",
        "total_amount",
        "settle_time",
    ),
    "lines": ("settlement_id", "item_type", "item_code", "trace_code", "order_time"),
}


class StoreHistory:
    """The node's settlements as the per-claim rules ask about them (see ``History``)."""

    def __init__(
        self,
        settlements: pa.Table,
        lines: pa.Table,
        monitored: set[str],
        cross_site: list[dict[str, Any]] | None = None,
    ) -> None:
        self._trace: dict[str, list[str]] = defaultdict(list)
        self._orders: dict[tuple[str, str], list[Order]] = defaultdict(list)
        self._stays: dict[tuple[str, str], list[Stay]] = defaultdict(list)
        self._spend: dict[tuple[str, str], list[tuple[str, Decimal]]] = defaultdict(list)
        people = _people(settlements)
        for row in lines.to_pylist():
            if row["trace_code"]:
                self._trace[row["trace_code"]].append(row["settlement_id"])
            who = people.get(row["settlement_id"])
            if who and who[1] and row["item_type"] == "drug" and row["item_code"] in monitored:
                order = Order(row["settlement_id"], who[0], row["order_time"])
                self._orders[(who[1], row["item_code"])].append(order)
        for row in settlements.to_pylist():
            if (
                row["visit_type"] == "inpatient"
                and row["discharge_time"]
                and row["principal_diagnosis"]
            ):
                stay = Stay(row["settlement_id"], row["admit_time"], row["discharge_time"])
                self._stays[(row["patient_pseudonym"], row["principal_diagnosis"])].append(stay)
            if row["visit_type"] == "pharmacy" and row["settle_time"]:
                month = (row["patient_pseudonym"], row["settle_time"].strftime("%Y-%m"))
                self._spend[month].append((row["settlement_id"], row["total_amount"]))
        self._over_spend: dict[tuple[str, str], int] = {}
        self._over_supply: dict[tuple[str, str], list[SupplyWindow]] = defaultdict(list)
        for flag in cross_site or ():
            self._cross_site(people.get(flag["settlement_id"]), flag)

    def _cross_site(self, who: tuple[str, str | None] | None, flag: dict[str, Any]) -> None:
        """Index one cross-site matching flag by the patient of its settlement."""
        evidence = json.loads(flag["evidence"])
        if who is None:
            return
        if flag["rule_id"] == "monthly_pharmacy_spend":
            self._over_spend[(who[0], evidence["month"])] = int(evidence["sites"])
        elif flag["rule_id"] == "cross_site_over_quantity":
            window = SupplyWindow(
                date.fromisoformat(evidence["window_start"]),
                int(evidence["window_days"]),
                int(evidence["sites"]),
            )
            if window not in self._over_supply[(who[0], evidence["item_code"])]:
                self._over_supply[(who[0], evidence["item_code"])].append(window)

    def trace_settlements(self, trace_code: str, exclude: str) -> list[str]:
        return [s for s in self._trace.get(trace_code, ()) if s != exclude]

    def doctor_orders(self, doctor: str, item_code: str, exclude: str) -> list[Order]:
        return [o for o in self._orders.get((doctor, item_code), ()) if o.settlement_id != exclude]

    def month_spend(self, patient: str, month: str, exclude: str) -> tuple[Decimal, int]:
        spent = [amount for s, amount in self._spend.get((patient, month), ()) if s != exclude]
        return sum(spent, Decimal(0)), len(spent)

    def stays(self, patient: str, diagnosis: str, exclude: str) -> list[Stay]:
        return [s for s in self._stays.get((patient, diagnosis), ()) if s.settlement_id != exclude]

    def cross_site_spend(self, patient: str, month: str) -> int:
        return self._over_spend.get((patient, month), 0)

    def cross_site_supply(self, patient: str, item_code: str) -> list[SupplyWindow]:
        return list(self._over_supply.get((patient, item_code), ()))


def _people(settlements: pa.Table) -> dict[str, tuple[str, str | None]]:
    """settlement id → (patient, doctor if a real one)."""
    rows = zip(
        settlements.column("settlement_id").to_pylist(),
        settlements.column("patient_pseudonym").to_pylist(),
        settlements.column("doctor_pseudonym").to_pylist(),
        settlements.column("doctor_status").to_pylist(),
        strict=True,
    )
    return {s: (p, d if status == "ok" else None) for s, p, d, status in rows}


@dataclass(frozen=True)
class Loaded:
    """What PreCheck loads from the store: the rules' history, and the model's aggregates."""

    history: StoreHistory
    features: FeatureContext | None


def load_history(access: SiteAccess, with_features: bool = False) -> Loaded:
    """Index the node's store for PreCheck (audited reads of exactly the fields needed): the
    rules' history, and the model's feature aggregates when a model will score."""
    drugs = access.home.knowledge_base().drugs
    monitored = {code for code, drug in drugs.items() if drug.monitored}
    reads = merge_reads(READS, FEATURE_READS) if with_features else READS
    with closing(duckdb.connect()) as db:
        access.attach_store(db, reads)
        settlements = db.sql("SELECT * FROM settlements").to_arrow_table()
        lines = db.sql("SELECT * FROM lines").to_arrow_table()
    history = StoreHistory(settlements, lines, monitored, _cross_site_flags(access))
    context = FeatureContext.from_tables(settlements, lines) if with_features else None
    return Loaded(history, context)


CROSS_SITE_CONTEXT = ("monthly_pharmacy_spend", "cross_site_over_quantity")


def _cross_site_flags(access: SiteAccess) -> list[dict[str, Any]]:
    """This node's latest matching flags of the rules PreCheck takes context from."""
    files = results_files(access.home.root)
    if not files:
        return []

    def read() -> list[dict[str, Any]]:
        flags = (json.loads(line) for path in files for line in path.open(encoding="utf-8"))
        return [
            {**flag, "evidence": json.dumps(flag["evidence"])}
            for flag in flags
            if flag["rule_id"] in CROSS_SITE_CONTEXT
        ]

    return access.read("flags", ["settlement_id", "rule_id", "evidence"], read)
