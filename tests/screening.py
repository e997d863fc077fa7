"""Helpers for screening tests: ingest a data directory into node homes and read flags back."""

from __future__ import annotations

import json
from pathlib import Path

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.catalogue import SINGLE_SITE
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.screen import ScreenReport, screen_node
from tests import oracle
from tests.nodes import operator
from tests.oracle import Flag, site_dirs


def ingest_sites(data_dir: Path, work: Path) -> dict[str, NodeHome]:
    """One node home per site folder of ``data_dir``, each with its files ingested."""
    homes = {}
    for folder in site_dirs(data_dir):
        home = init_home(work / folder.name, folder.name)
        labels = folder / "labels.csv"
        ingest(
            operator(home, "ingest"),
            folder / "settlements.csv",
            folder / "lines.csv",
            labels if labels.is_file() else None,
        )
        homes[folder.name] = home
    return homes


def read_flags(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def screen_all(
    homes: dict[str, NodeHome], pack: RulePack | None = None
) -> tuple[set[Flag], dict[str, ScreenReport]]:
    """Screen every home; the ``(rule_id, site_id, settlement_id)`` flagged and the reports."""
    flags: set[Flag] = set()
    reports = {}
    for site, home in homes.items():
        report = screen_node(operator(home, "screening"), home.root / "flags.jsonl", pack=pack)
        reports[site] = report
        for flag in read_flags(report.out):
            flags.add((str(flag["rule_id"]), str(flag["site_id"]), str(flag["settlement_id"])))
    return flags, reports


def oracle_single_site(data_dir: Path, kb: KnowledgeBase) -> set[Flag]:
    """The oracle's single-site flags, duplicate trace codes taken within each site (a box
    settled at two sites is for cross-site matching, not for one node's engine)."""
    data = oracle.load(data_dir, kb)
    flags = {f for f in oracle.evaluate(data_dir, kb) if f[0] in SINGLE_SITE}
    flags = {f for f in flags if f[0] != "duplicate_trace_code"}
    for site in {s.site_id for s in data.settlements.values()}:
        own = oracle.Dataset(lines=[ln for ln in data.lines if ln.site_id == site])
        flags |= {("duplicate_trace_code", *key) for key in oracle.duplicate_trace_code(own)}
    return flags


def engine_flags(data_dir: Path, work: Path) -> set[Flag]:
    """What the rule engine flags once every site of ``data_dir`` is ingested and screened."""
    flags, _ = screen_all(ingest_sites(data_dir, work))
    return flags
