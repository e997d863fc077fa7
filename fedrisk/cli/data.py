"""``fedrisk data …``: synthetic contract-v1 data for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedrisk.cli.render import console, fail
from fedrisk.models.errors import FedriskError
from fedrisk.models.kb import load_kb
from fedrisk.synth import DatasetSummary, generate_dataset

app = typer.Typer(help="Generate synthetic settlement data (contract v1).", no_args_is_help=True)


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder (one sub-folder per site).")],
    sites: Annotated[int, typer.Option("--sites", min=1, max=64, help="Number of sites.")] = 3,
    settlements: Annotated[
        int, typer.Option("--settlements", min=100, help="Mean settlements per site.")
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes).")] = 1,
    kb: Annotated[Path | None, typer.Option("--kb", help="Knowledge base folder.")] = None,
) -> None:
    """Write DIR/<site_id>/{settlements,lines,labels}.csv and DIR/truth.csv."""
    try:
        summary = generate_with_progress(out, sites, settlements, seed, kb)
    except FedriskError as error:
        raise fail(error) from None
    console.print(summary_table(summary))
    console.print(rules_table(summary))
    console.print(f"wrote {out} (truth: {out / 'truth.csv'})")


def generate_with_progress(
    out: Path, sites: int, settlements: int, seed: int, kb: Path | None = None
) -> DatasetSummary:
    """Generate a dataset with a progress bar per generation stage."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"generate: {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return generate_dataset(out, sites, settlements, seed, load_kb(kb), progress=progress)


def summary_table(summary: DatasetSummary) -> Table:
    """Per-site counts of a generated dataset."""
    table = Table(title="generated data")
    for column in ("site", "type", "settlements", "fee lines", "labels", "malformed rows"):
        table.add_column(column, justify="left" if column in ("site", "type") else "right")
    for site in summary.sites:
        table.add_row(
            site.site_id,
            site.site_type,
            f"{site.settlements:,}",
            f"{site.lines:,}",
            f"{site.labels:,}",
            f"{site.malformed:,}",
        )
    return table


def rules_table(summary: DatasetSummary) -> Table:
    """Injected incidents per rule id, and the model-only fraud per kind."""
    table = Table(title="injected incidents (truth.csv) and model-only fraud (labels only)")
    for column in ("rule / fraud kind", "incidents", "settlements involved", "note"):
        table.add_column(
            column, justify="left" if column in ("rule / fraud kind", "note") else "right"
        )
    for rule in summary.rules:
        table.add_row(
            rule.rule_id, f"{rule.incidents:,}", f"{rule.settlements:,}", rule.skipped or ""
        )
    for kind, count in summary.fraud:
        table.add_row(f"other: {kind}", f"{count:,}", f"{count:,}", "labels only")
    return table
