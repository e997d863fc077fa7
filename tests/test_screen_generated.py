"""The rule engine on generated data: equal to the oracle, and recall / precision vs truth.

For every single-site rule the engine must flag exactly what the independent row-by-row oracle
(tests/oracle.py) flags; duplicate trace codes are compared within each site, the engine's
scope (a box settled at two sites is the cross-site matching job's). Against the generator's
truth.csv: every injected single-site incident is found, and ≥ 99% of each rule's flags are on
truth settlements of that rule.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from fedrisk.models.kb import load_kb
from fedrisk.models.rules.catalogue import SINGLE_SITE
from fedrisk.synth import generate_dataset
from tests.oracle import Flag
from tests.screening import ingest_sites, oracle_single_site, screen_all

KB = load_kb()
# (seed, sites, settlements per site)
CASES = [(11, 3, 1500), (12, 3, 3000), (13, 4, 2500)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"seed{c[0]}-{c[1]}x{c[2]}")
def screened(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, set[Flag]]:
    seed, sites, settlements = request.param
    root = tmp_path_factory.mktemp(f"seed{seed}")
    generate_dataset(root / "data", sites=sites, settlements=settlements, seed=seed)
    flags, _ = screen_all(ingest_sites(root / "data", root / "homes"))
    return root / "data", flags


def single_site_truth(data_dir: Path) -> dict[str, list[set[tuple[str, str]]]]:
    """Truth incidents of the single-site rules, each as its set of settlements; incidents of
    a duplicate trace code that span sites are left to cross-site matching."""
    incidents: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    with (data_dir / "truth.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            incidents[(row["rule_id"], row["incident_id"])].add(
                (row["site_id"], row["settlement_id"])
            )
    out: dict[str, list[set[tuple[str, str]]]] = defaultdict(list)
    for (rule_id, _), members in incidents.items():
        if rule_id in SINGLE_SITE and len({site for site, _ in members}) == 1:
            out[rule_id].append(members)
    return out


def test_engine_equals_oracle(screened: tuple[Path, set[Flag]]) -> None:
    data_dir, flags = screened
    expected = oracle_single_site(data_dir, KB)
    missing = sorted(expected - flags)[:5]
    extra = sorted(flags - expected)[:5]
    assert flags == expected, f"missing {missing}, extra {extra}"


@pytest.mark.parametrize("rule_id", SINGLE_SITE)
def test_recall_and_precision_against_truth(screened: tuple[Path, set[Flag]], rule_id: str) -> None:
    data_dir, flags = screened
    incidents = single_site_truth(data_dir)[rule_id]
    assert incidents, f"the generator injected no {rule_id} incident"
    flagged = {(site, sid) for rule, site, sid in flags if rule == rule_id}
    missed = [sorted(m) for m in incidents if not m <= flagged]
    assert not missed, f"{len(missed)} of {len(incidents)} incidents not found, e.g. {missed[:2]}"
    on_truth = set().union(*incidents) | _cross_site_truth(data_dir, rule_id)
    precision = len(flagged & on_truth) / len(flagged)
    assert precision >= 0.99, f"{rule_id}: precision {precision:.3f}"


def _cross_site_truth(data_dir: Path, rule_id: str) -> set[tuple[str, str]]:
    """Truth settlements of the rule in incidents that span sites (they are truth too)."""
    with (data_dir / "truth.csv").open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        return {(r["site_id"], r["settlement_id"]) for r in rows if r["rule_id"] == rule_id}
