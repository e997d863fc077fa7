"""The rule engine: every enabled single-site rule of a pack, evaluated in SQL by DuckDB.

The engine reads whatever the connection calls ``settlements``, ``lines`` and ``rejects``
(the node's store and rejects for screening; a claim and its patient's history for PreCheck)
and leaves one table, ``rule_flags``: one row per (settlement, rule) with the contract's flag
fields and the versions of the knowledge base and rule pack that produced it.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.catalogue import SINGLE_SITE
from fedrisk.models.rules.kbtables import kb_tables
from fedrisk.models.rules.pack import RulePack
from fedrisk.models.rules.single_site import QUERIES

# What the rules read of each table, no more: screening exposes exactly these columns.
READS = {
    "settlements": (
        "site_id",
        "settlement_id",
        "site_type",
        "patient_pseudonym",
        "gender",
        "age",
        "visit_type",
        "admit_time",
        "discharge_time",
        "diagnosis_codes",
        "principal_diagnosis",
        "doctor_pseudonym",
        "doctor_status",
        "settle_time",
    ),
    "lines": (
        "site_id",
        "settlement_id",
        "line_no",
        "item_type",
        "item_code",
        "trace_code",
        "quantity",
        "days_supply",
        "order_time",
    ),
}
REJECT_COLUMNS = ("site_id", "settlement_id", "file", "row", "field", "reason")
REJECTS_SCHEMA = pa.schema(
    [(name, pa.int64() if name == "row" else pa.string()) for name in REJECT_COLUMNS]
)

_FLAGS = """
CREATE OR REPLACE TEMP TABLE rule_flags (
    site_id VARCHAR, settlement_id VARCHAR, rule_id VARCHAR, score DOUBLE, severity VARCHAR,
    evidence JSON, kb_version VARCHAR, rule_pack_version VARCHAR
)
"""


def rules_to_run(pack: RulePack) -> list[str]:
    """The single-site rules the pack enables, in catalogue order."""
    return [rule_id for rule_id in SINGLE_SITE if pack.enabled(rule_id)]


def evaluate(db: duckdb.DuckDBPyConnection, kb: KnowledgeBase, pack: RulePack) -> None:
    """Fill ``rule_flags`` with the flags of every enabled single-site rule.

    All rules run as one statement (a UNION ALL of one query per rule): DuckDB then schedules
    their scans together on every core, which costs less than one statement per rule.
    """
    for name, table in kb_tables(kb).items():
        db.register(name, table)
    db.execute(_FLAGS)
    rules = rules_to_run(pack)
    if not rules:
        return
    union = "\nUNION ALL\n".join(
        f"SELECT '{rule_id}' AS rule_id, * FROM ({QUERIES[rule_id](pack.rules[rule_id])})"
        for rule_id in rules
    )
    db.execute(
        f"""INSERT INTO rule_flags
        SELECT site_id, settlement_id, rule_id, 1.0, severity, evidence, $kb_version, $pack_version
        FROM ({union})""",
        {"kb_version": kb.version, "pack_version": pack.version},
    )
