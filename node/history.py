"""What PreCheck knows of a node's earlier settlements: indexes in memory, built from the store.

Built once when the server starts (and again when new batches are ingested), through the
access gate under purpose ``precheck``, from the few fields the per-claim rules need: trace
codes, the orders of monitored drugs per doctor, inpatient stays per patient and diagnosis, the
pharmacy spend per patient and month. A lookup is a dictionary access, so a check costs
microseconds, not a query.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import pyarrow as pa

from fedrisk.models.claimfeatures import READS as FEATURE_READS
from fedrisk.models.claimfeatures import FeatureContext
from fedrisk.models.rules.claimcheck import Order, Stay
from fedrisk.node.access import SiteAccess
from fedrisk.node.claims import merge_reads

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

    def __init__(self, settlements: pa.Table, lines: pa.Table, monitored: set[str]) -> None:
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

    def trace_settlements(self, trace_code: str, exclude: str) -> list[str]:
        return [s for s in self._trace.get(trace_code, ()) if s != exclude]

    def doctor_orders(self, doctor: str, item_code: str, exclude: str) -> list[Order]:
        return [o for o in self._orders.get((doctor, item_code), ()) if o.settlement_id != exclude]

    def month_spend(self, patient: str, month: str, exclude: str) -> tuple[Decimal, int]:
        spent = [amount for s, amount in self._spend.get((patient, month), ()) if s != exclude]
        return sum(spent, Decimal(0)), len(spent)

    def stays(self, patient: str, diagnosis: str, exclude: str) -> list[Stay]:
        return [s for s in self._stays.get((patient, diagnosis), ()) if s.settlement_id != exclude]


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
    history = StoreHistory(settlements, lines, monitored)
    context = FeatureContext.from_tables(settlements, lines) if with_features else None
    return Loaded(history, context)
