"""Rich output shared by the commands: progress bars, report tables, error lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedrisk.models.errors import FedriskError
from fedrisk.node.ingest import IngestReport

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
