"""``fedrisk node …``: what hospital IT runs at a site."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import grpc
import typer
from google.protobuf import json_format

from fedrisk.cli.access import (
    PASSPHRASE_VARIABLE,
    HomeOption,
    OperatorRole,
    new_passphrase,
    open_access,
    passphrase,
)
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
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.home import init_home, open_home
from fedrisk.node.ingest import STAGES, IngestReport, ingest
from fedrisk.node.precheckclient import ClientTls, check, claim_from_json
from fedrisk.node.screen import STAGES as SCREEN_STAGES
from fedrisk.node.screen import ScreenReport, screen_node
from fedrisk.node.serve import TlsFiles, WorkerStart, serve_until_signalled, start
from fedrisk.node.status import store_counts
from fedrisk.node.training import write_feature_table

app = typer.Typer(
    help="Run a node: initialise its home, ingest settlement exports, screen them.",
    no_args_is_help=True,
)

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
    protect: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help=f"Seal the node key with a passphrase (from ${PASSPHRASE_VARIABLE} or asked).",
        ),
    ] = False,
) -> None:
    """Create a node home: config, keys and secrets (0600), access policy, empty store,
    identity vault and audit log."""
    try:
        created = init_home(home, site_id, kb, rules, new_passphrase() if protect else None)
    except FedriskError as error:
        raise fail(error) from None
    kb_version = created.knowledge_base().version
    console.print(
        f"initialised node [bold]{site_id}[/] at {created.root} (knowledge base {kb_version}, "
        f"key {created.public_identity().fingerprint})"
    )


@app.command("identity")
def identity_command(home: HomeOption) -> None:
    """Print the node's public identity (JSON) to register it with a federation."""
    try:
        node = open_home(home)
        public = node.public_identity()
    except FedriskError as error:
        raise fail(error) from None
    console.print_json(data=public.to_json())


@app.command("ingest")
def ingest_command(
    home: HomeOption,
    settlements: Annotated[
        Path, typer.Option("--settlements", help="settlements.csv (contract v1).")
    ],
    lines: Annotated[Path, typer.Option("--lines", help="lines.csv (contract v1).")],
    labels: Annotated[Path | None, typer.Option("--labels", help="labels.csv (optional).")] = None,
    as_role: OperatorRole = "operator",
) -> None:
    """Validate, desensitize and store one batch; print accepted and rejected counts per file."""
    try:
        node = open_home(home)
        report = ingest_node(open_access(node, as_role, "ingest"), settlements, lines, labels)
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
    as_role: OperatorRole = "operator",
) -> None:
    """Screen the stored settlements with every enabled rule; write contract flags."""
    if start and end and start > end:
        raise fail(FedriskError(f"--from {start:%Y-%m-%d} is after --to {end:%Y-%m-%d}"))
    try:
        node = open_home(home)
        pack = load_rule_pack(rules) if rules else node.rule_pack()
        access = open_access(node, as_role, "screening")
        report = screen_with_progress(access, out, pack, start, end)
    except FedriskError as error:
        raise fail(error) from None
    console.print(screen_table(node.site_id, report, pack))
    console.print(
        f"{node.site_id}: {report.flags:,} flags in {report.out} ({report.seconds:.2f} s)"
    )


@app.command("features")
def features_command(
    home: HomeOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the table (CSV).")],
    as_role: OperatorRole = "operator",
) -> None:
    """Export the labelled settlements' model features and label as a numeric CSV (no IDs)."""
    try:
        node = open_home(home)
        with console.status("computing features …"):
            rows = write_feature_table(open_access(node, as_role, "training"), out)
    except FedriskError as error:
        raise fail(error) from None
    console.print(f"{node.site_id}: {rows:,} labelled rows written to {out}")


@app.command("status")
def status_command(home: HomeOption, as_role: OperatorRole = "operator") -> None:
    """What the node's store holds (counts only)."""
    try:
        node = open_home(home)
        counts = store_counts(open_access(node, as_role, "status"))
    except FedriskError as error:
        raise fail(error) from None
    console.print(
        f"{node.site_id}: {counts.batches} batches, {counts.settlements:,} settlements, "
        f"{counts.lines:,} fee lines, {counts.labels:,} labels"
    )


def ingest_node(
    access: SiteAccess, settlements: Path, lines: Path, labels: Path | None
) -> IngestReport:
    """Ingest with a progress bar over the stages."""
    node = access.home
    with stage_progress() as bar:
        task = bar.add_task(f"ingest {node.site_id}", total=len(STAGES))

        def advance(stage: str) -> None:
            bar.update(task, completed=STAGES.index(stage), description=f"{node.site_id}: {stage}")

        report = ingest(access, settlements, lines, labels, progress=advance)
        bar.update(task, completed=len(STAGES))
    return report


def screen_with_progress(
    access: SiteAccess,
    out: Path,
    pack: RulePack,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ScreenReport:
    """Screen with a progress bar over the stages."""
    node = access.home
    with stage_progress() as bar:
        task = bar.add_task(f"screen {node.site_id}", total=len(SCREEN_STAGES))

        def advance(stage: str) -> None:
            done = SCREEN_STAGES.index(stage)
            bar.update(task, completed=done, description=f"{node.site_id}: {stage}")

        report = screen_node(
            access,
            out,
            start.date() if start else None,
            end.date() if end else None,
            pack,
            progress=advance,
        )
        bar.update(task, completed=len(SCREEN_STAGES))
    return report


@app.command("serve")
def serve_command(
    home: HomeOption,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")],
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Server cert (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its key (PEM).")] = None,
    client_ca: Annotated[
        Path | None, typer.Option("--client-ca", help="Require client certs from this CA (mTLS).")
    ] = None,
    max_pending: Annotated[
        int, typer.Option("--max-pending", min=1, help="Calls at once before RESOURCE_EXHAUSTED.")
    ] = 64,
    as_role: OperatorRole = "precheck",
) -> None:
    """Serve PreCheck (事前提醒) over gRPC until SIGTERM; every call is audited."""
    if (tls_cert is None) != (tls_key is None) or (client_ca is not None and tls_cert is None):
        raise fail(FedriskError("TLS needs --tls-cert and --tls-key (and both for --client-ca)"))
    tls = TlsFiles(tls_cert, tls_key, client_ca) if tls_cert and tls_key else None
    try:
        node = open_home(home)
        with console.status("loading the node's history …"):
            source = WorkerStart(node.root, Principal.local(as_role), "precheck", passphrase(node))
            running = start(source, listen, tls, max_pending)
    except FedriskError as error:
        raise fail(error) from None
    mode = "mutual TLS" if client_ca else "TLS" if tls else "plaintext (use TLS outside a test)"
    console.print(f"{node.site_id}: PreCheck serving on port {running.port} ({mode})")
    serve_until_signalled(running)
    console.print(f"{node.site_id}: PreCheck stopped")


@app.command("precheck")
def precheck_command(
    target: Annotated[str, typer.Option("--target", help="HOST:PORT of a PreCheck server.")],
    claim: Annotated[Path, typer.Option("--claim", help="A claim as JSON (see docs).")],
    ca: Annotated[Path | None, typer.Option("--ca", help="The server's CA (enables TLS).")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="Client cert, for mTLS.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Client key, for mTLS.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline in seconds.")] = 5.0,
) -> None:
    """Send one claim to a PreCheck server and print its verdict as JSON."""
    try:
        message = claim_from_json(json.loads(claim.read_text(encoding="utf-8")))
        verdict = check(target, message, ClientTls(ca, cert, key) if ca else None, timeout)
    except (FedriskError, OSError, ValueError) as error:
        raise fail(FedriskError(str(error))) from None
    except grpc.RpcError as error:
        console.print(f"[red]{error.code().name}[/]: {error.details()}")
        raise typer.Exit(code=3) from None
    typer.echo(json_format.MessageToJson(verdict, preserving_proto_field_name=True))
