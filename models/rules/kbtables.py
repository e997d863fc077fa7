"""The knowledge base as relational tables, for rules written in SQL.

``kb_items``        code, kind (``drug`` | ``service``), name, gender, min_age, max_age
``kb_drugs``        code, max_units, max_days_supply, days_per_unit, monitored, indications
                    ('|'-joined ICD-10 prefixes, '' = any diagnosis)
``kb_services``     code, max_per_day
``kb_indications``  code, prefix (one row per ICD-10 prefix of a drug)
``kb_interactions`` drug_a, drug_b, severity (each pair in both orders)
"""

from __future__ import annotations

import pyarrow as pa

from fedrisk.models.kb import KnowledgeBase


def kb_tables(kb: KnowledgeBase) -> dict[str, pa.Table]:
    """The knowledge base's tables, by name."""
    return {
        "kb_items": _items(kb),
        "kb_drugs": pa.table(
            {
                "code": list(kb.drugs),
                "max_units": [d.max_units for d in kb.drugs.values()],
                "max_days_supply": [d.max_days_supply for d in kb.drugs.values()],
                "days_per_unit": [d.days_per_unit for d in kb.drugs.values()],
                "monitored": [d.monitored for d in kb.drugs.values()],
                "indications": ["|".join(d.indications) for d in kb.drugs.values()],
            }
        ),
        "kb_services": pa.table(
            {
                "code": list(kb.services),
                "max_per_day": [s.max_per_day for s in kb.services.values()],
            }
        ),
        "kb_indications": pa.table(
            {
                "code": [d.code for d in kb.drugs.values() for _ in d.indications],
                "prefix": [p for d in kb.drugs.values() for p in d.indications],
            },
            schema=pa.schema([("code", pa.string()), ("prefix", pa.string())]),
        ),
        "kb_interactions": pa.table(
            {
                "drug_a": [i.drug_a for i in kb.interactions] + [i.drug_b for i in kb.interactions],
                "drug_b": [i.drug_b for i in kb.interactions] + [i.drug_a for i in kb.interactions],
                "severity": [i.severity for i in kb.interactions] * 2,
            },
            schema=pa.schema(
                [("drug_a", pa.string()), ("drug_b", pa.string()), ("severity", pa.string())]
            ),
        ),
    }


def _items(kb: KnowledgeBase) -> pa.Table:
    entries = [("drug", d) for d in kb.drugs.values()] + [
        ("service", s) for s in kb.services.values()
    ]
    return pa.table(
        {
            "code": [e.code for _, e in entries],
            "kind": [kind for kind, _ in entries],
            "name": [e.name for _, e in entries],
            "gender": [e.gender for _, e in entries],
            "min_age": pa.array([e.min_age for _, e in entries], pa.int32()),
            "max_age": pa.array([e.max_age for _, e in entries], pa.int32()),
            "typical_unit_price": pa.array(
                [float(e.typical_unit_price) for _, e in entries], pa.float64()
            ),
        }
    )
