"""``fedrisk node …``: what hospital IT runs at a site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedrisk.cli.render import (
    console,
    fail,
    ingest_summary_line,
    ingest_table,
    stage_progress,
)
from fedrisk.models.errors import FedriskError
from fedrisk.node.home import NodeHome, init_home, open_home
from fedrisk.node.ingest import STAGES, IngestReport, ingest
from fedrisk.node.store import Store

app = typer.Typer(
    help="Run a node: initialise its home, ingest settlement exports.", no_args_is_help=True
)

HomeOption = Annotated[Path, typer.Option("--home", help="The node's home folder.")]


@app.command("init")
def init_command(
    home: HomeOption,
    site_id: Annotated[
        str, typer.Option("--site-id", help="The institution code (定点医药机构编码).")
    ],
    kb: Annotated[
        Path | None,
        typer.Option("--kb", help="A knowledge base folder (default: the one shipped)."),
    ] = None,
) -> None:
    """Create a node home: config, secrets (0600), empty store and identity vault."""
    try:
        created = init_home(home, site_id, kb)
    except FedriskError as error:
        raise fail(error) from None
    kb_version = created.knowledge_base().version
    console.print(
        f"initialised node [bold]{site_id}[/] at {created.root} (knowledge base {kb_version})"
    )


@app.command("ingest")
def ingest_command(
    home: HomeOption,
    settlements: Annotated[
        Path, typer.Option("--settlements", help="settlements.csv (contract v1).")
    ],
    lines: Annotated[Path, typer.Option("--lines", help="lines.csv (contract v1).")],
    labels: Annotated[Path | None, typer.Option("--labels", help="labels.csv (optional).")] = None,
) -> None:
    """Validate, desensitize and store one batch; print accepted and rejected counts per file."""
    try:
        node = open_home(home)
        report = ingest_node(node, settlements, lines, labels)
    except FedriskError as error:
        raise fail(error) from None
    if not report.already_ingested:
        console.print(ingest_table(node.site_id, report))
    console.print(ingest_summary_line(node.site_id, report), soft_wrap=True)


@app.command("status")
def status_command(home: HomeOption) -> None:
    """What the node's store holds."""
    try:
        node = open_home(home)
    except FedriskError as error:
        raise fail(error) from None
    with Store.open(node.store, read_only=True) as store:
        counts = store.counts()
    console.print(
        f"{node.site_id}: {counts.batches} batches, {counts.settlements:,} settlements, "
        f"{counts.lines:,} fee lines, {counts.labels:,} labels"
    )


def ingest_node(
    node: NodeHome, settlements: Path, lines: Path, labels: Path | None
) -> IngestReport:
    """Ingest with a progress bar over the stages."""
    with stage_progress() as bar:
        task = bar.add_task(f"ingest {node.site_id}", total=len(STAGES))

        def advance(stage: str) -> None:
            bar.update(task, completed=STAGES.index(stage), description=f"{node.site_id}: {stage}")

        report = ingest(node, settlements, lines, labels, progress=advance)
        bar.update(task, completed=len(STAGES))
    return report
