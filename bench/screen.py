"""Screening throughput: ``fedrisk node screen`` against a plain per-row rule evaluation.

    python bench/screen.py [--sites 3] [--settlements 100000] [--repeats 3] [--seed 1]

Generates synthetic contract-v1 data once, initialises one node home per site and ingests its
files (timed and printed, not part of the result). Then, for every repeat and every site, it
screens the home with the rule engine (``screen_node``: the 9 single-site rules, reads of the
store and writing of the flags included) and runs bench/reference_screen.py (the same rules in
plain Python, reading the store's rows with ``fetchall()`` included) in the same process, and
checks that both flag the same (rule, site, settlement) triples; a difference is printed as a
table and the run exits 1. Prints per-site and total medians and whether the target,
>= 10,000,000 fee lines/min and >= 10x the reference, is met.

``--data DIR`` benchmarks existing exports instead (one folder per site, named by site id).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.compare import SiteTimes, comparison_table
from bench.inputs import generate, machine_line, operator, parse_options, site_names
from bench.reference_screen import SINGLE_SITE_RULES, Flag, reference_flags
from fedrisk.models.rules.pack import RulePack, load_rule_pack
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.screen import screen_node

TARGET_LINES_PER_MINUTE = 10_000_000
TARGET_SPEED_UP = 10.0
EXAMPLES = 3  # settlements shown per side of a mismatch


@dataclass(frozen=True)
class Mismatch:
    """Triples of one rule and site that only one side flagged."""

    rule: str
    site: str
    only_fedrisk: list[str]
    only_reference: list[str]


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.splitlines()[0], argv)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    machine_line(console, f"duckdb {duckdb.__version__}")
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-") as tmp:
        work = Path(tmp)
        data = args.data if args.data is not None else _generated(console, args, work / "data")
        sites = site_names(data)
        if not sites:
            console.print(f"[red]no site folders with settlements.csv under {data}[/red]")
            return 2
        homes = _ingest(console, data, sites, work)
        pack = load_rule_pack(None)
        times, mismatches = _run(console, homes, pack, args.repeats, work)
    if mismatches:
        _mismatch_table(console, mismatches)
        return 1
    _report(console, times, args.repeats)
    return 0


def _generated(console: Console, args: argparse.Namespace, out: Path) -> Path:
    generate(console, args, out)
    return out


def _ingest(console: Console, data: Path, sites: list[str], work: Path) -> dict[str, NodeHome]:
    """One fresh node home per site with the site's files ingested (timed, not benchmarked)."""
    homes: dict[str, NodeHome] = {}
    started = time.perf_counter()
    for site in sites:
        folder = data / site
        labels = folder / "labels.csv" if (folder / "labels.csv").is_file() else None
        home = init_home(work / f"home-{site}", site)
        ingest(operator(home, "ingest"), folder / "settlements.csv", folder / "lines.csv", labels)
        homes[site] = home
    seconds = time.perf_counter() - started
    console.print(f"setup: {len(sites)} node homes initialised and ingested in {seconds:.1f} s")
    return homes


def _run(
    console: Console, homes: dict[str, NodeHome], pack: RulePack, repeats: int, work: Path
) -> tuple[dict[str, SiteTimes], list[Mismatch]]:
    """Time both sides for every repeat and site; collect any disagreement."""
    times = {site: SiteTimes() for site in homes}
    mismatches: list[Mismatch] = []
    for repeat in range(repeats):
        for site, home in homes.items():
            kb = home.knowledge_base()
            out = work / f"flags-{repeat}-{site}.jsonl"
            started = time.perf_counter()
            report = screen_node(operator(home, "screening"), out, pack=pack)
            times[site].fedrisk.append(time.perf_counter() - started)
            started = time.perf_counter()
            reference = reference_flags(home, kb, pack)
            times[site].reference.append(time.perf_counter() - started)
            times[site].lines = report.lines
            found = _compare(site, read_flags(out), reference)
            mismatches.extend(found)
            console.print(
                f"repeat {repeat + 1}/{repeats} {site}: {report.lines:,} lines, "
                f"{sum(report.counts.values()):,} flags, "
                f"fedrisk {times[site].fedrisk[-1]:.2f} s, "
                f"reference {times[site].reference[-1]:.2f} s"
                + (" [red]flags differ[/red]" if found else "")
            )
        if mismatches:
            break  # the timings of a wrong engine mean nothing
    return times, mismatches


def read_flags(path: Path) -> set[Flag]:
    """The ``(rule_id, site_id, settlement_id)`` of every rule flag of a flags file."""
    flags: set[Flag] = set()
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            if text.strip():
                flag = json.loads(text)
                flags.add((flag["rule_id"], flag["site_id"], flag["settlement_id"]))
    return flags


def _compare(site: str, fedrisk: set[Flag], reference: set[Flag]) -> list[Mismatch]:
    """Rules whose flagged settlements differ between the engine and the reference."""
    rules = sorted(set(SINGLE_SITE_RULES) | {f[0] for f in fedrisk | reference})
    found = []
    for rule in rules:
        mine = {sid for r, _, sid in fedrisk if r == rule}
        theirs = {sid for r, _, sid in reference if r == rule}
        if mine != theirs:
            found.append(Mismatch(rule, site, sorted(mine - theirs), sorted(theirs - mine)))
    return found


def _mismatch_table(console: Console, mismatches: list[Mismatch]) -> None:
    table = Table(title="[red]fedrisk and the reference flag different settlements[/red]")
    for name in ("rule", "site", "only fedrisk", "only reference", "examples"):
        table.add_column(name, justify="right" if name.startswith("only") else "left")
    for m in mismatches:
        examples = ", ".join(
            [f"+{sid}" for sid in m.only_fedrisk[:EXAMPLES]]
            + [f"-{sid}" for sid in m.only_reference[:EXAMPLES]]
        )
        table.add_row(
            m.rule, m.site, f"{len(m.only_fedrisk):,}", f"{len(m.only_reference):,}", examples
        )
    console.print(table)
    console.print("examples: +id flagged by fedrisk only, -id flagged by the reference only")


def _report(console: Console, times: dict[str, SiteTimes], repeats: int) -> None:
    title = "screening throughput, 9 single-site rules"
    table, totals = comparison_table(title, times, repeats, "min", 60.0)
    total_lines, fedrisk_total, reference_total = totals.lines, totals.fedrisk, totals.reference
    console.print(table)
    rate = total_lines / fedrisk_total * 60 if fedrisk_total else 0.0
    speed_up = reference_total / fedrisk_total if fedrisk_total else 0.0
    met = rate >= TARGET_LINES_PER_MINUTE and speed_up >= TARGET_SPEED_UP
    verdict = "[green]met[/green]" if met else "[red]NOT met[/red]"
    console.print(
        f"target >= {TARGET_LINES_PER_MINUTE:,} fee lines/min and >= {TARGET_SPEED_UP:.0f}x "
        f"the reference: {verdict} ({rate:,.0f} lines/min, {speed_up:.1f}x, "
        f"on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
