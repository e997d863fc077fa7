"""End-to-end screening, rules + risk model, in settlements per minute.

    python bench/screen_model.py [--sites 3] [--settlements 100000] [--repeats 3] [--data DIR]

Generates synthetic contract-v1 data once (or takes ``--data``), initialises one node per site,
ingests it, trains a local model on the node's labels, signs it with a benchmark model owner,
pushes and activates it (setup: timed and printed, not part of the result). Then, for every
repeat and site, in the same process: ``screen_node`` with the rules only (no active model: the
baseline) and with rules + model (features, LightGBM scoring of every settlement, top-3
reasons for the flagged ones). Prints per-site and total medians in settlements per minute, the
model's share of the time, and whether the target, >= 1,000,000 settlements/min on 2 cores
end to end, is met.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import lightgbm
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import (
    activate_local_model,
    generate,
    machine_line,
    operator,
    parse_options,
    site_names,
)
from fedrisk.crypto.identity import Identity
from fedrisk.node import registry
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.screen import ScreenReport, screen_node

TARGET_PER_MINUTE = 1_000_000


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.splitlines()[0], argv)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    machine_line(console, f"duckdb {duckdb.__version__}, lightgbm {lightgbm.__version__}")
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            data = work / "data"
            generate(console, args, data)
        homes = _setup(console, data, site_names(data), work)
        rules, model, flags = _run(console, homes, args.repeats, work)
    _report(console, rules, model, flags, args.repeats)
    return 0


def _setup(console: Console, data: Path, sites: list[str], work: Path) -> dict[str, NodeHome]:
    """Per site: a node home, its data ingested, a local model trained, signed and active."""
    owner = Identity.generate("bench-model-owner")
    homes = {}
    for site in sites:
        started = time.perf_counter()
        folder = data / site
        home = init_home(work / f"home-{site}", site)
        files = (folder / "settlements.csv", folder / "lines.csv", folder / "labels.csv")
        ingest(operator(home, "ingest"), *files)
        pushed, report = activate_local_model(home, work / f"bundle-{site}", owner)
        console.print(
            f"setup {site}: ingested, model {pushed.bundle_id} trained on {report.rows:,} "
            f"labelled settlements (held-out AUC {report.metrics['auc']:.3f}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        homes[site] = home
    return homes


Times = dict[str, list[float]]


def _run(
    console: Console, homes: dict[str, NodeHome], repeats: int, work: Path
) -> tuple[Times, Times, dict[str, ScreenReport]]:
    """Rules only (baseline) and rules + model, back to back for every repeat and site."""
    rules: Times = {site: [] for site in homes}
    model: Times = {site: [] for site in homes}
    last: dict[str, ScreenReport] = {}
    for repeat in range(repeats):
        for site, home in homes.items():
            active = registry.active(operator(home, "models"))
            assert active is not None
            registry.rollback(operator(home, "models"))  # no model: the rules-only baseline
            started = time.perf_counter()
            screen_node(operator(home, "screening"), work / f"rules-{site}.jsonl")
            rules[site].append(time.perf_counter() - started)
            registry.activate(operator(home, "models"), active.bundle_id)
            started = time.perf_counter()
            report = screen_node(operator(home, "screening"), work / f"model-{site}.jsonl")
            model[site].append(time.perf_counter() - started)
            last[site] = report
            console.print(
                f"repeat {repeat + 1}/{repeats} {site}: {report.settlements:,} settlements, "
                f"rules {rules[site][-1]:.2f} s, rules + model {model[site][-1]:.2f} s, "
                f"{report.counts.get('model', 0):,} model flags"
            )
    return rules, model, last


def _report(
    console: Console, rules: Times, model: Times, reports: dict[str, ScreenReport], repeats: int
) -> None:
    table = Table(title=f"end-to-end screening, rules + model (median of {repeats})")
    for column in ("site", "settlements", "model flags", "rules s", "rules + model s"):
        table.add_column(column, justify="left" if column == "site" else "right")
    table.add_column("settlements/min", justify="right")
    table.add_column("model share", justify="right")
    total_n = total_rules = total_model = 0.0
    for site, report in reports.items():
        r, m = statistics.median(rules[site]), statistics.median(model[site])
        total_n, total_rules, total_model = (
            total_n + report.settlements,
            total_rules + r,
            total_model + m,
        )
        table.add_row(
            site,
            f"{report.settlements:,}",
            f"{report.counts.get('model', 0):,}",
            f"{r:.2f}",
            f"{m:.2f}",
            f"{report.settlements / m * 60:,.0f}",
            f"{(m - r) / m:.0%}",
        )
    rate = total_n / total_model * 60
    table.add_section()
    table.add_row(
        "total",
        f"{total_n:,.0f}",
        "",
        f"{total_rules:.2f}",
        f"{total_model:.2f}",
        f"{rate:,.0f}",
        f"{(total_model - total_rules) / total_model:.0%}",
    )
    console.print(table)
    met = "met" if rate >= TARGET_PER_MINUTE else "NOT met"
    console.print(
        f"target >= {TARGET_PER_MINUTE:,} settlements/min end to end on 2 cores: {met} "
        f"({rate:,.0f}/min; rules alone {total_n / total_rules * 60:,.0f}/min in the same run)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
