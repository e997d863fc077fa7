"""Clean-bulk repairs: the two rules the column-wise draw cannot rule out by construction.

Random draws may give one patient two stays at one site with the same principal diagnosis a few
days apart (``split_admission``), or a month of pharmacy purchases worth 8000 RMB or more
(``monthly_pharmacy_spend``). Each offending later stay, or enough of the month's purchases, is
given to a *clone*: a new patient of the same sex and age, who has no other settlement and so
cannot take part in any cross-settlement rule.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from fedrisk.synth.clock import DAY, I64, month_index
from fedrisk.synth.tables import INPATIENT, PHARMACY
from fedrisk.synth.world import World

READMISSION_GAP: Final = (
    17 * DAY
)  # clean stays of one patient, site and diagnosis lie further apart
PHARMACY_MONTH_LIMIT: Final = 8_000_00  # cents; clean monthly pharmacy spend stays below


def settlement_totals(world: World) -> I64:
    """``total_amount`` of every settlement row in cents: the sum of its live line amounts."""
    cols, alive = world.lines.frozen()
    totals = np.bincount(
        cols["sett"][alive], weights=cols["amount"][alive], minlength=len(world.sett)
    )
    return np.rint(totals).astype(np.int64)


def principal_index(world: World) -> I64:
    """Per interned diagnosis list, the interned index of its first code."""
    return np.array([world.dx(v.split("|")[0]) for v in list(world.dx.values)], dtype=np.int64)


def fix_readmissions(world: World) -> int:
    """Give every stay that follows a same-site, same-diagnosis stay within 17 days to a clone."""
    s = world.sett
    rows = np.flatnonzero(s.visit == INPATIENT)
    principal = principal_index(world)[s.dx[rows]]
    order = np.lexsort((s.admit[rows], principal, s.site[rows], s.patient[rows]))
    rows, principal = rows[order], principal[order]
    key = np.stack([s.patient[rows], s.site[rows], principal])
    same = np.r_[False, (key[:, 1:] == key[:, :-1]).all(axis=0)]
    moved = 0
    starts = np.flatnonzero(~same)
    ends = np.r_[starts[1:], len(rows)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if b - a < 2:
            continue
        kept: list[int] = []
        for row in rows[a:b].tolist():
            if any(int(s.admit[row]) - int(s.discharge[k]) < READMISSION_GAP for k in kept):
                s.patient[row] = world.pop.clone(int(s.patient[row]))
                moved += 1
            else:
                kept.append(row)
    return moved


def fix_pharmacy_spend(world: World) -> int:
    """Move purchases to clones until every patient's monthly pharmacy spend is below 8000."""
    s = world.sett
    totals = settlement_totals(world)
    rows = np.flatnonzero(s.visit == PHARMACY)
    month = month_index(s.settle()[rows])
    key = s.patient[rows] * 4 + month
    uniq, inverse = np.unique(key, return_inverse=True)
    spend = np.bincount(inverse, weights=totals[rows], minlength=len(uniq))
    moved = 0
    for group in np.flatnonzero(spend >= PHARMACY_MONTH_LIMIT).tolist():
        members = rows[inverse == group]
        members = members[np.argsort(-totals[members], kind="stable")]
        remaining = int(totals[members].sum())
        for row in members.tolist():
            if remaining < PHARMACY_MONTH_LIMIT:
                break
            s.patient[row] = world.pop.clone(int(s.patient[row]))
            remaining -= int(totals[row])
            moved += 1
    return moved


PRESCRIBER_BALANCE: Final = 4.0  # clean doctors stay below this multiple of the monthly mean


def fix_prescriber_balance(world: World, passes: int = 3) -> int:
    """Lower to one unit the lines of doctors whose monthly amount of a drug exceeds 4× the
    mean per prescribing doctor (random draws give a few heavy tails); returns lines changed."""
    lines, catalog = world.lines, world.catalog
    changed = 0
    for _ in range(passes):
        cols, alive = lines.frozen()
        sett = cols["sett"]
        idx = np.flatnonzero(
            alive & catalog.items.is_drug[cols["item"]] & (world.sett.doctor[sett] >= 0)
        )
        doctor = world.sett.doctor[sett[idx]]
        group = cols["item"][idx] * 4 + month_index(cols["order"][idx])
        key = group * 1_000_000 + doctor
        uniq, inverse = np.unique(key, return_inverse=True)
        sums = np.bincount(inverse, weights=cols["amount"][idx], minlength=len(uniq))
        _, g_inverse = np.unique(uniq // 1_000_000, return_inverse=True)
        totals = np.bincount(g_inverse, weights=sums)
        doctors = np.bincount(g_inverse)
        ratio = sums * doctors[g_inverse] / totals[g_inverse]
        heavy = np.flatnonzero(ratio > PRESCRIBER_BALANCE)
        if len(heavy) == 0:
            break
        targets = np.flatnonzero(np.isin(inverse, heavy))
        for line in idx[targets].tolist():
            qty = lines.get(line, "qty")
            if qty <= 1:
                continue
            drug = world.kb.drugs[catalog.items.codes[lines.get(line, "item")]]
            lines.set(line, "qty", 1)
            lines.set(line, "amount", lines.get(line, "price"))
            if lines.get(line, "days") >= 0:
                lines.set(line, "days", drug.days_per_unit)
            changed += 1
    return changed
