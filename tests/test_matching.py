"""Cross-site matching on generated multi-site data equals a plaintext central computation.

Each job runs the whole protocol (tokens, blind join, BFV sums with masking, decisions) between
the coordinator's workflow and the nodes' steps in one process (tests/matching.py); the
oracle of tests/oracle.py computes the same rules centrally over every site's raw rows.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from fedrisk.models.kb import load_kb
from fedrisk.models.rules.claimcheck import Claim, ClaimLine, check_claim
from fedrisk.models.rules.pack import load_rule_pack
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.history import StoreHistory, load_history
from fedrisk.node.home import NodeHome
from fedrisk.node.matching.results import results_file
from fedrisk.synth import generate_dataset
from tests import oracle
from tests.matching import Federation, federate
from tests.screening import ingest_sites, read_flags, screen_all

KB = load_kb()
CROSS_SITE = (
    "duplicate_trace_code",
    "cross_site_over_quantity",
    "monthly_pharmacy_spend",
    "pharmacist_multi_site",
    "prescriber_outlier",
)


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Federation]:
    root = tmp_path_factory.mktemp("matching")
    generate_dataset(root / "data", sites=4, settlements=2500, seed=21)
    homes = ingest_sites(root / "data", root / "homes")
    federation = federate(list(homes.values()))
    reports = federation.run_all(list(CROSS_SITE))  # one run: three exchanges for all jobs
    assert [r.job for r in reports] == list(CROSS_SITE)
    assert all(not r.dropped and not r.refused for r in reports)
    return root / "data", federation


def _central(data_dir: Path) -> dict[str, set[tuple[str, str, str]]]:
    data = oracle.load(data_dir, KB)
    results = oracle.evaluate_dataset(data, KB)
    out = {rule: {(rule, *key) for key in results[rule]} for rule in CROSS_SITE}
    # a box settled twice at one site only is the single-site rule's, not the matching job's
    sites_of: dict[str, set[str]] = defaultdict(set)
    for line in data.lines:
        if line.trace_code:
            sites_of[line.trace_code].add(line.site_id)
    out["duplicate_trace_code"] = {
        ("duplicate_trace_code", *line.settlement_key)
        for line in data.lines
        if line.trace_code and len(sites_of[line.trace_code]) > 1
    }
    return out


@pytest.mark.parametrize("job", CROSS_SITE)
def test_each_job_flags_exactly_what_a_central_computation_flags(
    matched: tuple[Path, Federation], job: str
) -> None:
    data_dir, federation = matched
    assert not federation.errors
    expected = _central(data_dir)[job]
    assert expected, f"the generated data has no {job} case: the test would prove nothing"
    assert federation.flags(job) == expected


@pytest.mark.parametrize("job", CROSS_SITE)
def test_every_injected_incident_is_found(matched: tuple[Path, Federation], job: str) -> None:
    data_dir, federation = matched
    with (data_dir / "truth.csv").open(newline="", encoding="utf-8") as handle:
        truth = {
            (row["rule_id"], row["site_id"], row["settlement_id"])
            for row in csv.DictReader(handle)
            if row["rule_id"] == job
        }
    if job == "duplicate_trace_code":  # incidents within one site are screening's
        truth &= _central(data_dir)[job]
    assert truth
    assert truth <= federation.flags(job)


def test_screening_joins_the_cross_site_flags(matched: tuple[Path, Federation]) -> None:
    data_dir, federation = matched
    flags, _ = screen_all({home.site_id: home for home in federation.homes.values()})
    central = oracle.evaluate(data_dir, KB)
    for job in CROSS_SITE:  # duplicates: within one site (the engine) and across (matching)
        assert {f for f in flags if f[0] == job} == {f for f in central if f[0] == job}, job


def _next_order(
    home: NodeHome, settlement: str, code: str | None, day: datetime
) -> tuple[Claim, StoreHistory]:
    """A new small claim of the patient of ``settlement`` on ``day``, and PreCheck's history."""
    access = SiteAccess.open(home, Principal("pytest", "precheck"), "precheck")
    history = load_history(access).history
    with duckdb.connect(str(home.store), read_only=True) as db:
        ((patient, visit_type),) = db.execute(
            "SELECT patient_pseudonym, visit_type FROM settlements WHERE settlement_id = ?",
            [settlement],
        ).fetchall()
    lines = ()
    if code is not None:
        lines = (ClaimLine(1, "drug", code, None, Decimal(1), 1, day),)
    claim = Claim(
        home.site_id, "NEW-1", "pharmacy", patient, "F", 50, visit_type, day, None, (), None,
        "missing", lines, total_amount=Decimal("1.00"), settle_time=day,
    )  # fmt: skip
    return claim, history


def test_precheck_warns_a_patient_the_federation_found_over_a_cross_site_limit(
    matched: tuple[Path, Federation],
) -> None:
    _, federation = matched
    pack = load_rule_pack(None)
    for job in ("monthly_pharmacy_spend", "cross_site_over_quantity"):
        home, flag = next(
            (home, flag)
            for home in federation.homes.values()
            for flag in read_flags(results_file(home.root, job, "all"))
            if flag["evidence"]["sites"] >= 2
        )
        evidence = flag["evidence"]
        if job == "monthly_pharmacy_spend":
            day = datetime.fromisoformat(evidence["month"] + "-28T10:00:00")
            claim, history = _next_order(home, flag["settlement_id"], None, day)
        else:
            day = datetime.fromisoformat(evidence["window_start"] + "T10:00:00")
            claim, history = _next_order(home, flag["settlement_id"], evidence["item_code"], day)
        hits = {h.rule_id: h for h in check_claim(claim, history, KB, pack)}
        assert job in hits, job
        assert "the last cross-site matching" in hits[job].evidence
        later = replace(claim, admit_time=day + timedelta(70), settle_time=day + timedelta(70))
        assert job not in {h.rule_id for h in check_claim(later, history, KB, pack)}
