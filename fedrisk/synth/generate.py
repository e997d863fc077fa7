"""The orchestrator: ``generate_dataset`` runs every stage and writes the files.

Stages, each with its own random stream derived from the seed (same seed → same bytes):

1. plan the sites, check the case mix against the KB, draw the patients and staff;
2. draw the clean bulk (``clean``), alter ~1% of hospital/clinic claims as model-only fraud,
   repair readmissions and monthly pharmacy spend (``fixes``);
3. pick the malformed rows, place the clean edge cases, inject the incidents of every rule
   (pharmacist and prescriber incidents last, as they depend on everything else's times and
   amounts);
4. write ``<site>/settlements.csv``, ``lines.csv``, ``labels.csv``, ``malformed.csv`` and
   ``truth.csv``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedrisk.models.kb import KnowledgeBase, load_kb
from fedrisk.models.schema import MODEL_VIOLATION, RULE_IDS
from fedrisk.synth import incidents_cross as cross
from fedrisk.synth import incidents_item as item
from fedrisk.synth.book import Book
from fedrisk.synth.catalog import build_catalog
from fedrisk.synth.clean import generate_clean
from fedrisk.synth.edges import place_edges
from fedrisk.synth.fixes import (
    fix_pharmacy_spend,
    fix_prescriber_balance,
    fix_readmissions,
    settlement_totals,
)
from fedrisk.synth.fraud import inject_fraud
from fedrisk.synth.malformed import SitePlan, plan_malformed
from fedrisk.synth.outlier import prescriber_outlier
from fedrisk.synth.population import make_population, make_staff
from fedrisk.synth.sites import plan_sites
from fedrisk.synth.summary import DatasetSummary, RuleSummary, SiteSummary
from fedrisk.synth.tables import Strings
from fedrisk.synth.world import Progress, World, no_progress
from fedrisk.synth.writer import Writer, write_truth

PATIENTS_PER_SETTLEMENT = 0.3
Injector = Callable[[Book, int], str | None]

# rule id → (injector, incidents per settlement, minimum incidents)
INJECTORS: dict[str, tuple[Injector, float, int]] = {
    "gender_conflict": (item.gender_conflict, 0.001, 4),
    "age_conflict": (item.age_conflict, 0.001, 4),
    "over_quantity": (item.over_quantity, 0.001, 6),
    "indication_mismatch": (item.indication_mismatch, 0.001, 4),
    "interaction": (item.interaction, 0.001, 4),
    "duplicate_trace_code": (cross.duplicate_trace_code, 0.0005, 4),
    "cross_site_over_quantity": (cross.cross_site_over_quantity, 0.0004, 3),
    "monthly_pharmacy_spend": (cross.monthly_pharmacy_spend, 0.0005, 3),
    "batch_prescribing": (cross.batch_prescribing, 0.0003, 3),
    "split_admission": (cross.split_admission, 0.0005, 3),
    "data_quality": (item.unknown_doctor, 0.0005, 3),
    "pharmacist_multi_site": (cross.pharmacist_multi_site, 0.0005, 3),
}


def _count(rate: float, minimum: int, total: int) -> int:
    return max(minimum, round(rate * total))


def generate_dataset(
    out: Path,
    sites: int,
    settlements: int,
    seed: int,
    kb: KnowledgeBase | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DatasetSummary:
    """Generate a synthetic federation of ``sites`` sites and write it under ``out``.

    Parameters
    ----------
    out
        Output folder; gets ``<site_id>/{settlements,lines,labels,malformed}.csv`` and
        ``truth.csv``.
    sites
        Number of sites; types cycle hospital, pharmacy, pharmacy, clinic, then hospital,
        pharmacy, clinic.
    settlements
        Mean settlements per site (site sizes spread ×0.6…×1.4 and sum to
        ``sites × settlements``).
    seed
        Random seed: the same arguments give byte-identical files.
    kb
        Knowledge base the data must respect; the default one when ``None``.
    progress
        Called as ``progress(stage, done, total)`` now and then.

    Returns
    -------
    DatasetSummary
        Per-site row counts, per-rule incident counts and skipped rules with the reason.
    """
    kb = load_kb() if kb is None else kb
    report: Progress = progress or no_progress
    out = Path(out)

    def stream(stage: int) -> np.random.Generator:
        return np.random.default_rng([seed, stage])

    catalog = build_catalog(kb)
    profiles = plan_sites(sites, settlements, stream(1))
    total = sites * settlements
    pop = make_population(int(total * PATIENTS_PER_SETTLEMENT) + 300, stream(2))
    staff = make_staff(profiles)
    dx, drg = Strings(), Strings()
    sett, lines = generate_clean(catalog, profiles, pop, staff, dx, drg, stream(3), report)
    n = len(sett)
    world = World(
        kb,
        catalog,
        profiles,
        pop,
        staff,
        sett,
        lines,
        dx,
        drg,
        reserved=np.zeros(n, dtype=np.bool_),
        rejected=np.zeros(n, dtype=np.bool_),
        fraud=np.zeros(n, dtype=np.int64),
        progress=report,
    )
    fraud = inject_fraud(world, stream(4))
    fix_readmissions(world)
    fix_prescriber_balance(world)
    fix_pharmacy_spend(world)
    book = Book(world, stream(5))
    plans = plan_malformed(world, book, stream(6))
    edge_cases = place_edges(book, 1 + total // 100_000)
    skipped: dict[str, str] = {}
    stages = len(INJECTORS) + 1
    for done, (rule, (inject, rate, minimum)) in enumerate(INJECTORS.items(), start=1):
        reason = inject(book, _count(rate, minimum, total))
        if reason is not None:
            skipped.setdefault(rule, reason)
        report("incidents", done, stages)
    dead = np.zeros(len(world.lines), dtype=np.bool_)
    for plan in plans.values():
        dead[list(plan.lines)] = True
    reason = prescriber_outlier(book, 1 + total // 200_000, dead)
    if reason is not None:
        skipped["prescriber_outlier"] = reason
    report("incidents", stages, stages)
    return _write(out, world, book, plans, seed, skipped, fraud, edge_cases)


def _write(
    out: Path,
    world: World,
    book: Book,
    plans: dict[int, SitePlan],
    seed: int,
    skipped: dict[str, str],
    fraud: dict[str, int],
    edge_cases: int,
) -> DatasetSummary:
    out.mkdir(parents=True, exist_ok=True)
    violation: dict[int, str] = {}
    rank = {rule: i for i, rule in enumerate(RULE_IDS)}
    for incident in book.incidents:
        for row in incident.rows:
            known = violation.get(row)
            if known is None or rank[incident.rule] < rank[known]:
                violation[row] = incident.rule
    for row in np.flatnonzero(world.fraud > 0).tolist():
        violation.setdefault(row, MODEL_VIOLATION)
    writer = Writer(world, settlement_totals(world))
    site_summaries = []
    for site in world.sites:
        files = writer.write_site(out, site.index, plans[site.index], violation, seed)
        site_summaries.append(
            SiteSummary(
                site.site_id,
                site.site_type,
                files.settlements,
                files.lines,
                files.labels,
                files.malformed,
            )
        )
        world.progress("write", site.index + 1, len(world.sites))
    truth_rows = write_truth(out, world, book.incidents)
    rules = []
    for rule in RULE_IDS:
        mine = [i for i in book.incidents if i.rule == rule]
        involved = sum(len(i.settlements) for i in mine)
        rules.append(
            RuleSummary(
                rule, len(mine), involved, None if mine else skipped.get(rule, "not injected")
            )
        )
    return DatasetSummary(
        out=out,
        seed=seed,
        sites=tuple(site_summaries),
        rules=tuple(rules),
        fraud=tuple(sorted(fraud.items())),
        edge_cases=edge_cases,
        truth_rows=truth_rows,
    )
