"""Malformed rows: what ingest must reject (docs/validation.md), one defect per row.

About 0.1% of each site's settlement rows and fee lines (at least one of each kind that applies)
are broken so that exactly one field fails, and ``malformed.csv`` names that field, as the
validator reports the *first* failing column. A broken settlement takes its fee lines with it
(they become orphans, field ``settlement_id``). Every settlement a broken row names is a
``data_quality`` incident. Rows are picked from the clean bulk before any other incident, so a
malformed row takes part in nothing else.

Defects are chosen here and applied to the text of the rows by ``writer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import numpy as np

from fedrisk.synth.book import Book
from fedrisk.synth.tables import INPATIENT, OUTPATIENT, PHARMACY
from fedrisk.synth.world import World

# Settlement defects, by the field the validator reports first.
SETTLEMENT_DEFECTS: Final = (
    "birth_date",
    "gender",
    "patient_id",
    "admit_time",
    "total_amount",
    "fund_paid",
    "visit_type",
    "discharge_time",
    "settlement_id",  # the row repeats an earlier settlement_id; the earlier row is accepted
    "row",  # a field is missing
)
LINE_DEFECTS: Final = (
    "item_code",
    "quantity",
    "amount",
    "trace_code",
    "order_time",
    "line_no",
    "ghost",  # names no settlement: empty settlement_id
)
DEFECT_SHARE: Final = 0.001
_UNKNOWN_DRUG: Final = "X00ZZ00000"
_UNKNOWN_SERVICE: Final = "S000000000"


@dataclass
class SitePlan:
    """The defects of one site: settlement rows and fee lines by index, with their kind."""

    settlements: dict[int, str] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)
    ghosts: list[int] = field(default_factory=list)


def plan_malformed(world: World, book: Book, rng: np.random.Generator) -> dict[int, SitePlan]:
    """Pick and reserve the victims of every defect, register their incidents."""
    s = world.sett
    cols, alive = world.lines.frozen()
    drug_line = alive & (cols["trace"] >= 0)
    has_drug = np.bincount(cols["sett"][drug_line], minlength=len(s)) > 0
    lines_per_site = np.bincount(s.site[cols["sett"][alive]], minlength=len(world.sites))
    plans: dict[int, SitePlan] = {}
    for site in world.sites:
        plan = SitePlan()
        kinds = [
            k for k in SETTLEMENT_DEFECTS if k != "discharge_time" or site.site_type == "hospital"
        ]
        visits = [PHARMACY] if site.site_type == "pharmacy" else [OUTPATIENT]
        count = max(len(kinds), round(DEFECT_SHARE * site.settlements))
        start = int(rng.integers(0, len(kinds)))
        for i in range(count):
            kind = kinds[(start + i) % len(kinds)]
            visit = INPATIENT if kind == "discharge_time" else visits[0]
            if (
                kind
                in (
                    "birth_date",
                    "gender",
                    "patient_id",
                    "total_amount",
                    "fund_paid",
                    "settlement_id",
                    "row",
                )
                and site.site_type == "hospital"
                and rng.random() < 0.15
            ):
                visit = INPATIENT
            row = book.take(site.index, visit)
            if row is None:
                continue
            plan.settlements[row] = kind
            if kind != "settlement_id":
                world.rejected[row] = True
            book.record("data_quality", [row])
        count = max(len(LINE_DEFECTS), round(DEFECT_SHARE * int(lines_per_site[site.index])))
        start = int(rng.integers(0, len(LINE_DEFECTS)))
        for i in range(count):
            kind = LINE_DEFECTS[(start + i) % len(LINE_DEFECTS)]
            if kind == "ghost":
                plan.ghosts.append(int(rng.integers(0, 1 << 30)))
                continue
            where = has_drug if kind == "trace_code" else None
            row = book.take(site.index, visits[0], where)
            if row is None:
                continue
            own = world.lines.of(row)
            if kind == "trace_code":
                own = [i for i in own if world.lines.get(i, "trace") >= 0]
            plan.lines[own[int(rng.integers(0, len(own)))]] = kind
            book.record("data_quality", [row])
        plans[site.index] = plan
    return plans


def break_settlement(fields: list[str], kind: str, salt: int) -> list[str]:
    """The fields of a settlement row with one defect (``settlement_id``: unchanged copy)."""
    out = list(fields)
    if kind == "birth_date":
        out[6] = f"{fields[6][:4]}-02-30"
    elif kind == "gender":
        out[5] = "X"
    elif kind == "patient_id":
        out[3] = fields[3][:17] + ("0" if fields[3][17] != "0" else "1")
    elif kind == "admit_time":
        text = fields[9]
        out[9] = f"{text[:10]} {text[11:]}" if salt % 2 else text.replace("-", "/")
    elif kind == "total_amount":
        out[15] = "N/A" if salt % 2 else f"¥{fields[15]}"
    elif kind == "fund_paid":
        out[16] = f"{Decimal(fields[15]) + Decimal('10.00'):.2f}"
    elif kind == "visit_type":
        out[8] = "emergency"
    elif kind == "discharge_time":
        out[10] = ""
    elif kind == "row":
        out = out[:-1]
    return out


def break_line(fields: list[str], kind: str, salt: int, known_codes: frozenset[str]) -> list[str]:
    """The fields of a fee line with one defect."""
    out = list(fields)
    if kind == "item_code":
        code = _UNKNOWN_DRUG if fields[3] == "drug" else _UNKNOWN_SERVICE
        while code in known_codes:
            code += "9"
        out[4] = code
    elif kind == "quantity":
        out[7], out[9] = "0", "0.00"
    elif kind == "amount":
        out[9] = f"{Decimal(fields[9]) + Decimal('1.00'):.2f}"
    elif kind == "trace_code":
        out[6] = fields[6][:10]
    elif kind == "order_time":
        text = fields[11]
        out[11] = f"2026-02-30T{text[11:]}" if salt % 2 else f"{text[:10]} {text[11:]}"
    elif kind == "line_no":
        out[2] = f"{fields[2]}.0" if salt % 2 else f"#{fields[2]}"
    elif kind == "ghost":
        out[0] = ""
    return out
