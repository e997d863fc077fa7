"""``fedrisk node …``: what hospital IT runs at a site."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from fedrisk.cli.render import (
    console,
    fail,
    ingest_summary_line,
    ingest_table,
    screen_table,
    stage_progress,
)
from fedrisk.models.errors import FedriskError
from fedrisk.models.rules.pack import RulePack, load_rule_pack
from fedrisk.node.home import NodeHome, init_home, open_home
from fedrisk.node.ingest import STAGES, IngestReport, ingest
from fedrisk.node.screen import STAGES as SCREEN_STAGES
from fedrisk.node.screen import ScreenReport, screen_node
from fedrisk.node.store import Store

app = typer.Typer(
    help="Run a node: initialise its home, ingest settlement exports, screen them.",
    no_args_is_help=True,
)

HomeOption = Annotated[Path, typer.Option("--home", help="The node's home folder.")]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="A rule pack file (TOML; default: the one shipped)."),
]


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
    rules: RulesOption = None,
) -> None:
    """Create a node home: config, secrets (0600), empty store and identity vault."""
    try:
        created = init_home(home, site_id, kb, rules)
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


@app.command("screen")
def screen_command(
    home: HomeOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the flags (JSON Lines).")],
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First settle date (default: all)."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last settle date, inclusive."),
    ] = None,
    rules: RulesOption = None,
) -> None:
    """Screen the stored settlements with every enabled rule; write contract flags."""
    if start and end and start > end:
        raise fail(FedriskError(f"--from {start:%Y-%m-%d} is after --to {end:%Y-%m-%d}"))
    try:
        node = open_home(home)
        pack = load_rule_pack(rules) if rules else node.rule_pack()
        report = screen_with_progress(node, out, pack, start, end)
    except FedriskError as error:
        raise fail(error) from None
    console.print(screen_table(node.site_id, report, pack))
    console.print(
        f"{node.site_id}: {report.flags:,} flags in {report.out} ({report.seconds:.2f} s)"
    )


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


def screen_with_progress(
    node: NodeHome,
    out: Path,
    pack: RulePack,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ScreenReport:
    """Screen with a progress bar over the stages."""
    with stage_progress() as bar:
        task = bar.add_task(f"screen {node.site_id}", total=len(SCREEN_STAGES))

        def advance(stage: str) -> None:
            done = SCREEN_STAGES.index(stage)
            bar.update(task, completed=done, description=f"{node.site_id}: {stage}")

        report = screen_node(
            node,
            out,
            start.date() if start else None,
            end.date() if end else None,
            pack,
            progress=advance,
        )
        bar.update(task, completed=len(SCREEN_STAGES))
    return report
