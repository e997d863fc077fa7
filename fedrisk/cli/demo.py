"""``fedrisk demo``: the whole job on one machine, on synthetic data or on a DIR of exports."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedrisk.cli.access import open_access
from fedrisk.cli.data import generate_with_progress, summary_table
from fedrisk.cli.demofed import cross_site_matching, federated_model, rounds_table
from fedrisk.cli.demomodel import demo_owner
from fedrisk.cli.matchview import matching_table
from fedrisk.cli.node import ingest_node, screen_with_progress
from fedrisk.cli.render import console, fail, ingest_summary_line
from fedrisk.deploy.local import FederationError
from fedrisk.models.errors import ContractError, FedriskError
from fedrisk.models.rules.catalogue import CATALOGUE
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.home import CONFIG_FILE, init_home, open_home
from fedrisk.node.ingest import IngestReport
from fedrisk.node.screen import ScreenReport

MIN_NODES = 2


def demo_command(
    sites: Annotated[int, typer.Option("--sites", min=1, max=64, help="Sites to generate.")] = 4,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Contract data already on disk: DIR/<site_id>/*.csv."),
    ] = None,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where node homes (and generated data) go.")
    ] = Path("fedrisk-demo"),
    settlements: Annotated[
        int, typer.Option("--settlements", min=100, help="Mean settlements per generated site.")
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated data.")] = 7,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Federated rounds.")] = 3,
    trees: Annotated[int, typer.Option("--trees", min=1, help="Trees per node and round.")] = 10,
) -> None:
    """Generate (or take) data for N sites, start one node per site under WORKDIR and ingest;
    train one risk model over a real local Flower federation (SuperLink and one SuperNode per
    site, TLS, node authentication), sign and activate it at every node; match across sites
    (duplicate trace codes, cross-site supply and spend, pharmacists at two sites, prescriber
    baselines) with a blind coordinator; and screen each; flags (single-site, cross-site and the
    model's) go to WORKDIR/<site_id>/flags.jsonl, the training curve to WORKDIR/federation/."""
    try:
        if data is None:
            data = workdir / "data"
            console.rule(f"generating {sites} sites × ~{settlements:,} settlements → {data}")
            console.print(summary_table(generate_with_progress(data, sites, settlements, seed)))
        site_dirs = contract_sites(data)
        reports = {site: ingest_site(workdir, site, folder) for site, folder in site_dirs.items()}
        console.print(demo_table(reports))
        console.print(rejects_table(reports))
        for site, report in reports.items():
            console.print(ingest_summary_line(site, report), soft_wrap=True)
        federate(workdir, site_dirs, rounds, trees)
        match(workdir, list(site_dirs))
        screens = {site: screen_site(workdir, site) for site in site_dirs}
    except FedriskError as error:
        raise fail(error) from None
    pack = open_home(workdir / next(iter(site_dirs))).rule_pack()
    console.print(flags_table(screens, pack))
    for site, screen in screens.items():
        console.print(f"{site}: {screen.flags:,} flags in {screen.out}", soft_wrap=True)


def federate(workdir: Path, site_dirs: dict[str, Path], rounds: int, trees: int) -> None:
    """The federated model, when at least two sites have labels to learn from."""
    labelled = [site for site, folder in site_dirs.items() if (folder / "labels.csv").is_file()]
    if len(labelled) < MIN_NODES:
        console.print(
            f"federated training skipped: it needs labelled settlements at {MIN_NODES} sites or "
            f"more, and {len(labelled)} of {len(site_dirs)} have labels.csv; screening uses the "
            "rules (and any model already active)"
        )
        return
    console.rule(f"federated training: {len(labelled)} nodes over a local Flower federation")
    try:
        with console.status("SuperLink, SuperNodes, enrollment, rounds …"):
            trained = federated_model(workdir, labelled, demo_owner(workdir), rounds, trees)
    except FederationError as error:
        raise FedriskError(f"federated training failed: {error}") from None
    console.print(rounds_table(trained))


def match(workdir: Path, sites: list[str]) -> None:
    """Every cross-site job over every site; the flags join each node's screening."""
    if len(sites) < MIN_NODES:
        console.print(f"cross-site matching skipped: it needs {MIN_NODES} sites or more")
        return
    console.rule(f"cross-site matching: {len(sites)} nodes, blind coordinator")
    try:
        with console.status("tokens, blind join, encrypted sums …"):
            matched = cross_site_matching(workdir, sites)
    except FederationError as error:
        raise FedriskError(f"cross-site matching failed: {error}") from None
    console.print(matching_table(matched.report.get("matching", [])))
    console.print(f"matching took {matched.seconds:.0f} s; its flags join each node's flags.jsonl")


def contract_sites(data: Path) -> dict[str, Path]:
    """The site folders of a contract data folder (each with settlements.csv and lines.csv)."""
    found = {
        folder.name: folder
        for folder in sorted(data.iterdir() if data.is_dir() else [])
        if (folder / "settlements.csv").is_file() and (folder / "lines.csv").is_file()
    }
    if not found:
        raise ContractError(f"{data}: no site folder with settlements.csv and lines.csv")
    return found


def ingest_site(workdir: Path, site_id: str, folder: Path) -> IngestReport:
    """Initialise the site's node (once) and ingest its files."""
    home = workdir / site_id
    node = open_home(home) if (home / CONFIG_FILE).exists() else init_home(home, site_id)
    labels = folder / "labels.csv"
    return ingest_node(
        open_access(node, "operator", "ingest"),
        folder / "settlements.csv",
        folder / "lines.csv",
        labels if labels.is_file() else None,
    )


def screen_site(workdir: Path, site_id: str) -> ScreenReport:
    """Screen one demo node's whole store into WORKDIR/<site_id>/flags.jsonl."""
    node = open_home(workdir / site_id)
    access = open_access(node, "operator", "screening")
    return screen_with_progress(access, node.root / "flags.jsonl", node.rule_pack())


def flags_table(screens: dict[str, ScreenReport], pack: RulePack) -> Table:
    """Flags per rule (rows: single-site, then cross-site, then the model) and site (columns)."""
    table = Table(title=f"screening: flags per rule and site (rule pack {pack.version})")
    table.add_column("rule")
    for site in screens:
        table.add_column(site, justify="right")
    for spec in CATALOGUE:
        if pack.enabled(spec.rule_id):
            cells = [f"{s.counts.get(spec.rule_id, 0):,}" for s in screens.values()]
            table.add_row(spec.rule_id, *cells)
    table.add_row("model", *[f"{s.counts.get('model', 0):,}" for s in screens.values()])
    table.add_row("[bold]total[/]", *[f"[bold]{s.flags:,}[/]" for s in screens.values()])
    return table


def demo_table(reports: dict[str, IngestReport]) -> Table:
    """Accepted and rejected rows per site and file."""
    table = Table(title="ingest: accepted / rejected per site")
    for column in ("site", "settlements", "fee lines", "labels", "batch"):
        table.add_column(column, justify="left" if column in ("site", "batch") else "right")
    for site, report in reports.items():
        if report.already_ingested:
            table.add_row(site, "—", "—", "—", f"{report.batch_id} (already ingested)")
            continue
        cells = {f.file: f"{f.accepted:,} ✓ / {f.rejected:,} ✗" for f in report.files}
        table.add_row(
            site,
            cells.get("settlements", "—"),
            cells.get("lines", "—"),
            cells.get("labels", "—"),
            report.batch_id,
        )
    return table


def rejects_table(reports: dict[str, IngestReport]) -> Table:
    """Rejected rows by file and first failing field (rows) and site (columns)."""
    counts = {
        site: Counter(report.rejected_by_field)
        for site, report in reports.items()
        if report.rejects_path is not None
    }
    table = Table(title="rejected rows by first failing field (details: WORKDIR/<site>/rejects/)")
    table.add_column("file: field")
    for site in counts:
        table.add_column(site, justify="right")
    keys = sorted({key for per_site in counts.values() for key in per_site})
    for file, field in keys:
        cells = [f"{counts[site][(file, field)]:,}" for site in counts]
        table.add_row(f"{file.removesuffix('.csv')}: {field}", *cells)
    return table
