"""Rich output shared by the commands: progress bars, report tables, error lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedrisk.models.errors import FedriskError
from fedrisk.models.rules.catalogue import CATALOGUE
from fedrisk.models.rules.pack import RulePack
from fedrisk.node.ingest import IngestReport
from fedrisk.node.screen import ScreenReport

console = Console()
errors = Console(stderr=True)


def fail(error: FedriskError) -> typer.Exit:
    """Print a fedrisk error (its message is safe to show) and give the exit to raise."""
    errors.print(f"[bold red]error:[/] {error}", soft_wrap=True)
    return typer.Exit(code=2)


@contextmanager
def stage_progress() -> Iterator[Progress]:
    """A transient progress bar (tasks are added by the caller)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        yield bar


def ingest_table(site_id: str, report: IngestReport) -> Table:
    """Accepted / rejected counts of one ingest, per file."""
    table = Table(title=f"ingest {site_id} — batch {report.batch_id}")
    for column in ("file", "read", "accepted", "rejected"):
        table.add_column(column, justify="right" if column != "file" else "left")
    for f in report.files:
        table.add_row(f.file, f"{f.read:,}", f"{f.accepted:,}", f"{f.rejected:,}")
    return table


def ingest_summary_line(site_id: str, report: IngestReport) -> str:
    """One line: time and rate of an ingest, or that its content was there already."""
    if report.already_ingested:
        return f"{site_id}: already ingested as batch {report.batch_id}; nothing added"
    rate = report.lines_read / report.seconds if report.seconds else 0.0
    where = f", rejects in {report.rejects_path}" if report.rejects_path else ""
    return f"{site_id}: {report.seconds:.2f} s ({rate:,.0f} fee lines/s){where}"


def screen_table(site_id: str, report: ScreenReport, pack: RulePack) -> Table:
    """Flags per rule of one screening, with every rule of the pack and why it did not run."""
    table = Table(
        title=f"screen {site_id} — {report.settlements:,} settlements, {report.lines:,} fee lines",
        caption=f"knowledge base {report.kb_version} · rule pack {pack.name} {pack.version}",
    )
    for column in ("rule", "severity", "flags"):
        table.add_column(column, justify="right" if column == "flags" else "left")
    for spec in CATALOGUE:
        config = pack.rules[spec.rule_id]
        severity = config.severity or "from kb"
        if not config.enabled:
            table.add_row(spec.rule_id, severity, "[dim]disabled[/]")
        elif spec.scope == "cross_site":
            table.add_row(spec.rule_id, severity, "[dim]cross-site: federated matching[/]")
        else:
            table.add_row(spec.rule_id, severity, f"{report.counts.get(spec.rule_id, 0):,}")
    if report.model is not None:
        table.add_row(f"model {report.model}", "warn", f"{report.counts.get('model', 0):,}")
    table.add_row("[bold]total[/]", "", f"[bold]{report.flags:,}[/]")
    return table
