"""The clean bulk: settlements and fee lines that respect the knowledge base and break no rule.

Everything is drawn column-wise with numpy, one visit kind of one site at a time:

- a patient is drawn from the pool of those eligible for the visit kind (sex and age over the
  whole period) who have its chronic condition; when the visit has drugs, only from those whose
  *home site* for that drug group is this site, so a patient gets a given drug at one site only
  and no days of supply add up across sites;
- at hospitals and clinics every settlement takes its own cell of a doctor × day × 10-minute
  grid, so a doctor never orders for two patients within 60 seconds;
- quantities come from the catalogue's capped choices, so units, days of supply and services per
  stay day stay within the limits; prices are the KB's typical prices.

Same-site readmissions and monthly pharmacy spend are settled afterwards by ``fixes``.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from fedrisk.synth.catalog import Catalog, Visit
from fedrisk.synth.clock import DAY, I64, MINUTE, PERIOD_DAYS, Mask, ages_on
from fedrisk.synth.population import Population, Staff
from fedrisk.synth.sites import SiteProfile
from fedrisk.synth.tables import (
    INPATIENT,
    LINE_FIELDS,
    NO_DOCTOR,
    NO_TIME,
    VISITS,
    Lines,
    Settlements,
    Strings,
)
from fedrisk.synth.templates import COMORBIDITIES
from fedrisk.synth.world import Progress

GRID_START = 8 * 60  # minutes: the first slot of a working day, 08:00
SLOT_MINUTES = 5  # bookkeeping positions; the bulk uses every other one (10 minutes apart)
SLOTS_PER_DAY = 120  # 08:00 … 17:55
BULK_SLOTS = SLOTS_PER_DAY // 2
EMPTY_DAYS_SHARE = 0.03  # drug lines whose days_supply is left empty (q × days_per_unit fits)


def eligibility(catalog: Catalog, pop: Population) -> list[Mask]:
    """Per visit kind, the patients whose sex and age fit it on every day of the period."""
    n = len(pop)
    start = ages_on(pop.birth[:n], date(2026, 1, 1))
    end = ages_on(pop.birth[:n], date(2026, 3, 31))
    out = []
    for v in catalog.visits:
        t = v.template
        ok = (start >= t.min_age) & (end <= t.max_age)
        if t.gender is not None:
            ok &= pop.gender[:n] == (1 if t.gender == "M" else 0)
        out.append(ok)
    return out


def _pools(
    catalog: Catalog,
    sites: tuple[SiteProfile, ...],
    elig: list[Mask],
    rng: np.random.Generator,
) -> dict[tuple[int, int], I64]:
    """Patients each (site, visit kind) draws from: condition members with their home here."""
    n = len(elig[0])
    expected: dict[str, float] = {}
    members: dict[str, Mask] = {}
    visits_per: dict[str, float] = {}
    for site in sites:
        kinds = catalog.for_site_type(site.site_type)
        total = sum(v.weight for v in kinds)
        for v in kinds:
            cond = v.template.cond
            if cond is not None:
                expected[cond] = expected.get(cond, 0.0) + site.settlements * v.weight / total
                members[cond] = members.get(cond, np.zeros(n, dtype=np.bool_)) | elig[v.index]
                visits_per[cond] = max(visits_per.get(cond, 0.0), v.template.visits)
    for cond in sorted(members):
        eligible = max(int(members[cond].sum()), 1)
        rate = min(1.0, expected[cond] / (visits_per[cond] * eligible))
        members[cond] &= rng.random(n) < rate
    homes: dict[int, I64] = {}
    for group in range(catalog.groups):
        serving = [
            s.index
            for s in sites
            if any(v.group == group for v in catalog.for_site_type(s.site_type))
        ]
        if serving:
            homes[group] = np.array(serving, dtype=np.int64)[rng.integers(0, len(serving), n)]
    pools: dict[tuple[int, int], I64] = {}
    for site in sites:
        for v in catalog.for_site_type(site.site_type):
            mask = elig[v.index]
            if v.template.cond is not None:
                mask = mask & members[v.template.cond]
            if v.group >= 0:
                mask = mask & (homes[v.group] == site.index)
            pools[(site.index, v.index)] = np.flatnonzero(mask)
    return pools


class _Block:
    """Columns of one site's settlements and lines while they are drawn."""

    def __init__(self) -> None:
        self.s: dict[str, list[I64]] = {k: [] for k in ("visit", "patient", "dx", "drg", "los")}
        self.s["template"] = []
        self.lines: dict[str, list[I64]] = {k: [] for k in ("sett", "spec", "item", "qty", "days")}
        self.size = 0

    def col(self, name: str) -> I64:
        parts = self.s[name]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def line_col(self, name: str) -> I64:
        parts = self.lines[name]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _draw_visits(
    block: _Block,
    v: Visit,
    count: int,
    pool: I64,
    catalog: Catalog,
    dx: Strings,
    drg: Strings,
    rng: np.random.Generator,
) -> None:
    """Append ``count`` settlements of one visit kind (and their lines) to ``block``."""
    t = v.template
    first = block.size
    patients = pool[rng.integers(0, len(pool), count)]
    principal = rng.integers(0, len(t.dx), count)
    second = np.where(rng.random(count) < t.comorb, rng.integers(0, len(COMORBIDITIES), count), -1)
    combos = np.array(
        [[dx(p)] + [dx(p if c == p else f"{p}|{c}") for c in COMORBIDITIES] for p in t.dx],
        dtype=np.int64,
    )
    dx_index = combos[principal, second + 1]
    los = np.ones(count, dtype=np.int64)
    drg_index = np.zeros(count, dtype=np.int64)
    if t.visit == "inpatient":
        los = rng.integers(t.los[0], t.los[1] + 1, count)
        heavy = np.where(rng.random(count) < 0.3, 1, 3)
        light = np.where(rng.random(count) < 0.3, 3, 5)
        severity = np.where(second >= 0, heavy, light)
        codes = np.array([0, drg(f"{t.drg}1"), 0, drg(f"{t.drg}3"), 0, drg(f"{t.drg}5")])
        drg_index = codes[severity]
    block.s["visit"].append(np.full(count, VISITS.index(t.visit), dtype=np.int64))
    block.s["patient"].append(patients)
    block.s["dx"].append(dx_index)
    block.s["drg"].append(drg_index)
    block.s["los"].append(los)
    block.s["template"].append(np.full(count, v.index, dtype=np.int64))
    rows = np.arange(first, first + count, dtype=np.int64)
    included = np.zeros(count, dtype=np.bool_)
    for k, spec in enumerate(t.lines):
        take = np.ones(count, dtype=np.bool_) if spec.p >= 1 else rng.random(count) < spec.p
        if k == len(t.lines) - 1:
            take |= ~included  # never a settlement without lines
        included |= take
        m = int(take.sum())
        if m == 0:
            continue
        weights = None if spec.w is None else np.array(spec.w) / sum(spec.w)
        qty = np.array(spec.q, dtype=np.int64)[rng.choice(len(spec.q), m, p=weights)]
        if spec.per_day:
            qty = qty * los[take]
        item = catalog.item(spec.code)
        days = np.full(m, -1, dtype=np.int64)
        if catalog.items.is_drug[item]:
            drug = catalog.kb.drugs[spec.code]
            days = np.where(rng.random(m) < EMPTY_DAYS_SHARE, -1, qty * drug.days_per_unit)
        block.lines["sett"].append(rows[take])
        block.lines["spec"].append(np.full(m, k, dtype=np.int64))
        block.lines["item"].append(np.full(m, item, dtype=np.int64))
        block.lines["qty"].append(qty)
        block.lines["days"].append(days)
    block.size += count


def _doctor_times(
    site: SiteProfile, visit: I64, staff: Staff, max_los: int, rng: np.random.Generator
) -> tuple[I64, I64]:
    """Admission times and doctors from distinct cells of the doctor × day × slot grid."""
    n = len(visit)
    cells_total = site.doctors * PERIOD_DAYS * BULK_SLOTS
    draw = rng.choice(cells_total, size=min(cells_total, int(n * 1.3) + 64), replace=False)
    stay = visit == INPATIENT
    early = np.flatnonzero(draw // BULK_SLOTS % PERIOD_DAYS < PERIOD_DAYS - max_los)
    early = early[: int(stay.sum())]
    if len(early) < int(stay.sum()):
        raise ValueError(f"{site.site_id}: too few doctor slots for its stays")
    used = np.zeros(len(draw), dtype=np.bool_)
    used[early] = True
    cells = np.empty(n, dtype=np.int64)
    cells[stay] = draw[early]
    cells[~stay] = draw[~used][: int((~stay).sum())]
    doctor = cells // (BULK_SLOTS * PERIOD_DAYS) + staff.doctor_offset[site.index]
    day = cells // BULK_SLOTS % PERIOD_DAYS
    minute = GRID_START + (cells % BULK_SLOTS) * 2 * SLOT_MINUTES
    return day * DAY + minute * MINUTE, doctor


def generate_clean(
    catalog: Catalog,
    sites: tuple[SiteProfile, ...],
    pop: Population,
    staff: Staff,
    dx: Strings,
    drg: Strings,
    rng: np.random.Generator,
    progress: Progress,
) -> tuple[Settlements, Lines]:
    """Draw the clean bulk of every site (see the module docstring)."""
    elig = eligibility(catalog, pop)
    pools = _pools(catalog, sites, elig, rng)
    max_los = max(
        (v.template.los[1] for v in catalog.visits if v.template.visit == "inpatient"), default=1
    )
    parts: list[Settlements] = []
    line_parts: list[dict[str, I64]] = []
    offset = 0
    for site in sites:
        kinds = [
            v for v in catalog.for_site_type(site.site_type) if len(pools[(site.index, v.index)])
        ]
        weights = np.array([v.weight for v in kinds], dtype=np.float64)
        counts = rng.multinomial(site.settlements, weights / weights.sum())
        block = _Block()
        for v, count in zip(kinds, counts.tolist(), strict=True):
            if count:
                _draw_visits(block, v, count, pools[(site.index, v.index)], catalog, dx, drg, rng)
        visit, los = block.col("visit"), block.col("los")
        n = block.size
        if site.has_doctors:
            admit, doctor = _doctor_times(site, visit, staff, max_los, rng)
            pharmacist = np.full(n, NO_DOCTOR, dtype=np.int64)
        else:
            minute = rng.integers(8 * 60, 21 * 60, n)
            admit = rng.integers(0, PERIOD_DAYS, n) * DAY + minute * MINUTE
            doctor = np.full(n, NO_DOCTOR, dtype=np.int64)
            first = staff.pharmacist_offset[site.index]
            pharmacist = rng.integers(first, first + site.pharmacists, n)
        discharge_minute = rng.integers(9 * 12, 12 * 12, n) * 5
        discharge = np.where(
            visit == INPATIENT,
            (admit // DAY + los) * DAY + discharge_minute * MINUTE,
            NO_TIME,
        )
        order = np.lexsort((rng.random(n), admit))
        new_row = np.empty(n, dtype=np.int64)
        new_row[order] = np.arange(n)
        parts.append(
            Settlements(
                site=np.full(n, site.index, dtype=np.int64),
                visit=visit[order],
                patient=block.col("patient")[order],
                admit=admit[order],
                discharge=discharge[order],
                dx=block.col("dx")[order],
                drg=block.col("drg")[order],
                doctor=doctor[order],
                pharmacist=pharmacist[order],
                number=np.arange(1, n + 1, dtype=np.int64),
                template=block.col("template")[order],
            )
        )
        sett = new_row[block.line_col("sett")]
        item = block.line_col("item")
        line_parts.append(
            {
                "sett": sett + offset,
                "spec": block.line_col("spec"),
                "item": item,
                "qty": block.line_col("qty"),
                "days": block.line_col("days"),
                "order": admit[block.line_col("sett")],
            }
        )
        offset += n
        progress("clean", site.index + 1, len(sites))
    sett_all = Settlements.concat(parts)
    return sett_all, _lines(line_parts, catalog)


def _lines(parts: list[dict[str, I64]], catalog: Catalog) -> Lines:
    """Concatenate the line blocks, order them by settlement, number them and price them."""
    raw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((raw["spec"], raw["sett"]))
    raw = {k: v[order] for k, v in raw.items()}
    sett = raw["sett"]
    starts = np.flatnonzero(np.r_[True, sett[1:] != sett[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(sett)]))
    line_no = np.arange(len(sett)) - first + 1
    price = catalog.items.price[raw["item"]]
    is_drug = catalog.items.is_drug[raw["item"]]
    trace = np.where(is_drug, np.cumsum(is_drug) - 1, -1).astype(np.int64)
    cols = {
        "sett": sett,
        "line_no": line_no.astype(np.int64),
        "item": raw["item"],
        "trace": trace,
        "qty": raw["qty"],
        "price": price,
        "amount": raw["qty"] * price,
        "days": raw["days"],
        "order": raw["order"],
    }
    assert tuple(cols) == LINE_FIELDS
    lines = Lines(cols, np.ones(len(sett), dtype=np.bool_))
    lines.next_trace = int(is_drug.sum())
    return lines
