"""Ingest throughput: ``fedrisk node ingest`` against a plain csv-module validator.

    python bench/ingest.py [--sites 3] [--settlements 100000] [--repeats 3] [--seed 1]

Generates synthetic contract-v1 data once (timed: the target is <= 60 s for 3 x 100,000
settlements), then, for every repeat and every site, ingests the site's files into a fresh node
home (validate, desensitize, vault, store) and runs bench/reference_ingest.py (the same checks
row by row, plus the per-row pseudonym and age cost, storing nothing) over the same files, in
the same process. Prints per-site and total medians and whether the ingest target,
>= 200,000 fee lines/s (total fee lines / total ingest time, median over repeats), is met.

``--data DIR`` benchmarks existing exports instead (one folder per site, named by site id).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.compare import SiteTimes, comparison_table
from bench.inputs import generate, machine_line, operator, parse_options, site_names
from bench.reference_ingest import validate_files
from fedrisk.models.kb import load_kb
from fedrisk.node.home import init_home
from fedrisk.node.ingest import STAGES, ingest

TARGET_LINES_PER_SECOND = 200_000
GENERATION_TARGET_SECONDS = 60.0
GENERATION_TARGET_SIZE = (3, 100_000)


@dataclass
class IngestTimes(SiteTimes):
    """A site's seconds per repeat, with fedrisk's seconds per stage."""

    stages: list[dict[str, float]] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.splitlines()[0], argv)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    machine_line(console, f"pyarrow {pyarrow.__version__}, duckdb {duckdb.__version__}")
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-") as tmp:
        work = Path(tmp)
        data = args.data if args.data is not None else _generate(console, args, work / "data")
        sites = site_names(data)
        if not sites:
            console.print(f"[red]no site folders with settlements.csv under {data}[/red]")
            return 2
        times = _run(console, data, sites, args.repeats, work)
    _report(console, times, args.repeats)
    return 0


def _generate(console: Console, args: argparse.Namespace, out: Path) -> Path:
    """Generate the data, then say whether generation met its own target."""
    seconds = generate(console, args, out)
    if (args.sites, args.settlements) == GENERATION_TARGET_SIZE:
        met = seconds <= GENERATION_TARGET_SECONDS
        verdict = "[green]met[/green]" if met else "[red]NOT met[/red]"
        console.print(f"generation target <= {GENERATION_TARGET_SECONDS:.0f} s: {verdict}")
    return out


def _run(
    console: Console, data: Path, sites: list[str], repeats: int, work: Path
) -> dict[str, IngestTimes]:
    kb = load_kb()
    times = {site: IngestTimes() for site in sites}
    for repeat in range(repeats):
        for site in sites:
            folder = data / site
            settlements, lines = folder / "settlements.csv", folder / "lines.csv"
            labels = folder / "labels.csv" if (folder / "labels.csv").is_file() else None
            home = init_home(work / f"home-{repeat}-{site}", site)
            started = time.perf_counter()
            marks: list[tuple[str, float]] = [("open", started)]
            access = operator(home, "ingest")
            report = ingest(access, settlements, lines, labels, progress=_recorder(marks))
            finished = time.perf_counter()
            times[site].fedrisk.append(finished - started)
            ends = [t for _, t in marks[1:]] + [finished]
            times[site].stages.append(
                {stage: end - t for (stage, t), end in zip(marks, ends, strict=True)}
            )
            started = time.perf_counter()
            reference = validate_files(settlements, lines, labels, site, kb)
            times[site].reference.append(time.perf_counter() - started)
            times[site].lines = report.lines_read
            node_counts = {f.file: (f.read, f.accepted, f.rejected) for f in report.files}
            ref_counts = {k: (c.read, c.accepted, c.rejected) for k, c in reference.counts.items()}
            if node_counts != ref_counts:
                console.print(
                    f"[yellow]{site}: counts differ, fedrisk {node_counts} "
                    f"vs reference {ref_counts}[/yellow]"
                )
            console.print(
                f"repeat {repeat + 1}/{repeats} {site}: {report.lines_read:,} lines, "
                f"fedrisk {times[site].fedrisk[-1]:.2f} s, "
                f"reference {times[site].reference[-1]:.2f} s"
            )
    return times


def _recorder(marks: list[tuple[str, float]]) -> Callable[[str], None]:
    """An ingest progress callback that notes when each stage starts."""

    def record(stage: str) -> None:
        marks.append((stage, time.perf_counter()))

    return record


def _report(console: Console, times: dict[str, IngestTimes], repeats: int) -> None:
    table, totals = comparison_table("ingest throughput", times, repeats, "s", 1.0)
    total_lines, fedrisk_total = totals.lines, totals.fedrisk
    console.print(table)
    stages = {
        stage: statistics.median(
            sum(t.stages[r].get(stage, 0.0) for t in times.values()) for r in range(repeats)
        )
        for stage in ("open", *STAGES)
    }
    console.print(
        "fedrisk stages, all sites (median s): "
        + ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in stages.items())
    )
    rate = total_lines / fedrisk_total if fedrisk_total else 0.0
    met = rate >= TARGET_LINES_PER_SECOND
    verdict = "[green]met[/green]" if met else "[red]NOT met[/red]"
    console.print(
        f"target >= {TARGET_LINES_PER_SECOND:,} fee lines/s: {verdict} "
        f"({rate:,.0f} lines/s on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
