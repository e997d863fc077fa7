"""``fedrisk audit …``: what auditors run — verify a node's log, query it, prove entries."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from fedrisk.cli.access import AuditorRole, HomeOption, open_access
from fedrisk.cli.render import console, errors, fail
from fedrisk.crypto.identity import IdentityError, PublicIdentity
from fedrisk.crypto.merkle import ProofError
from fedrisk.crypto.treehead import TreeHead, TreeHeadError
from fedrisk.models.errors import FedriskError
from fedrisk.node.auditlog import last_head
from fedrisk.node.auditproof import check_inclusion, prove_entry
from fedrisk.node.auditquery import AuditFilter, query_log
from fedrisk.node.auditverify import VerifyReport, verify_log
from fedrisk.node.home import NodeHome, open_home

app = typer.Typer(
    help="Audit a node: verify its tamper-evident log, query who read what, prove entries.",
    no_args_is_help=True,
)

IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        help="The node's public identity (JSON) as you received it; default: HOME/identity.json.",
    ),
]
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


@app.command("verify")
def verify_command(
    home: HomeOption,
    identity: IdentityOption = None,
    against: Annotated[
        Path | None,
        typer.Option("--against", help="A signed head saved earlier (`audit head --out`)."),
    ] = None,
) -> None:
    """Recompute the whole log and check every signed head; exit 1 at the first bad entry."""
    try:
        node = open_home(home)
        key = _key(node, identity)
        earlier = _head_file(against) if against else None
    except FedriskError as error:
        raise fail(error) from None
    with Progress(
        TextColumn("verify"), BarColumn(), DownloadColumn(), console=errors, transient=True
    ) as bar:
        task = bar.add_task("verify", total=None)
        report = verify_log(
            node.audit,
            key,
            earlier,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    _print_verdict(node.site_id, report)
    if not report.intact:
        raise typer.Exit(code=1)


def _print_verdict(site_id: str, report: VerifyReport) -> None:
    if report.problem is None:
        root = report.last_head.root.hex() if report.last_head else "-"
        console.print(
            f"[green]intact[/]: {site_id} audit log, {report.entries:,} entries, "
            f"{report.heads:,} signed heads, root {root} ({report.seconds:.2f} s)"
        )
        return
    where = "" if report.problem.entry is None else f"first bad entry: {report.problem.entry}; "
    console.print(f"[bold red]NOT INTACT[/]: {site_id} audit log: {where}{report.problem.message}")


@app.command("head")
def head_command(
    home: HomeOption,
    identity: IdentityOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also save the head here.")] = None,
) -> None:
    """Print the latest signed tree head (keep it: `verify --against` checks the log still
    extends it)."""
    try:
        node = open_home(home)
        head = last_head(node.audit)
        if head is None:
            raise FedriskError(f"{node.audit}: the log has no signed head")
        head.verify(_key(node, identity))
    except (FedriskError, TreeHeadError, ValueError) as error:
        raise fail(FedriskError(str(error))) from None
    text = json.dumps({"node": node.site_id, **head.to_json()}, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    console.print_json(text)


@app.command("query")
def query_command(
    home: HomeOption,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this role.")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose", help="Only this purpose.")] = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="Only 'allowed' or 'denied'.")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", formats=TIME_FORMATS, help="From this instant (UTC if no zone)."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", formats=TIME_FORMATS, help="Before this instant (exclusive)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines instead of a table.")] = False,
    as_role: AuditorRole = "auditor",
) -> None:
    """Who read or wrote what, for which purpose, allowed or denied (itself an audited read)."""
    where = AuditFilter(actor, role, purpose, decision, dataset, since, until)
    try:
        node = open_home(home)
        entries = query_log(open_access(node, as_role, "audit"), where)
    except FedriskError as error:
        raise fail(error) from None
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    console.print(_entries_table(node.site_id, entries))


def _entries_table(site_id: str, entries: list[dict[str, Any]]) -> Table:
    """One row per entry (the fields read are in --json: the lists are long)."""
    table = Table(
        title=f"audit log of {site_id}: {len(entries):,} matching entries", box=box.SIMPLE
    )
    for column in ("seq", "time (UTC)", "actor", "role", "purpose", "access", "rows"):
        table.add_column(column, no_wrap=True, justify="right" if column == "rows" else "left")
    table.add_column("decision")
    for e in entries:
        decision = str(e.get("decision", ""))
        shown = f"[red]{decision}[/]: {e.get('reason', '')}" if decision == "denied" else decision
        table.add_row(
            str(e.get("seq")),
            str(e.get("time", ""))[:19].replace("T", " "),
            str(e.get("actor")),
            str(e.get("role")),
            str(e.get("purpose")),
            f"{e.get('action')} {e.get('dataset')}",
            "" if e.get("rows") is None else f"{e['rows']:,}",
            shown,
        )
    return table


@app.command("prove")
def prove_command(
    home: HomeOption,
    index: Annotated[int, typer.Option("--index", help="The entry to prove (its seq).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof here.")] = None,
    as_role: AuditorRole = "auditor",
) -> None:
    """An inclusion proof of one entry under the latest signed head, for a third party."""
    try:
        node = open_home(home)
        proof = prove_entry(open_access(node, as_role, "audit"), index)
    except FedriskError as error:
        raise fail(error) from None
    text = json.dumps(proof, indent=2, ensure_ascii=False)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"proof of entry {index} (tree size {proof['tree_size']}) written to {out}")
    else:
        typer.echo(text)


@app.command("check-proof")
def check_proof_command(
    proof: Annotated[Path, typer.Argument(help="A proof file from `fedrisk audit prove`.")],
    identity: Annotated[
        Path, typer.Option("--identity", help="The node's public identity (JSON) you trust.")
    ],
) -> None:
    """Check an inclusion proof offline, against the node's public identity; exit 1 if false."""
    try:
        key = _identity_file(identity)
        data = json.loads(proof.read_text(encoding="utf-8"))
        head = check_inclusion(data, key)
    except FedriskError as error:
        raise fail(error) from None
    except (ValueError, KeyError, TypeError, ProofError, TreeHeadError) as error:
        console.print(f"[bold red]proof does not hold[/]: {error}")
        raise typer.Exit(code=1) from None
    console.print(
        f"[green]proof holds[/]: entry {data['index']} is in the log of {key.site_id} "
        f"signed at size {head.size} ({head.time})"
    )


def _key(node: NodeHome, identity: Path | None) -> PublicIdentity:
    return _identity_file(identity) if identity else node.public_identity()


def _identity_file(path: Path) -> PublicIdentity:
    try:
        return PublicIdentity.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, IdentityError) as exc:
        raise FedriskError(f"{path}: not a usable public identity ({exc})") from None


def _head_file(path: Path) -> TreeHead:
    try:
        return TreeHead.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TreeHeadError) as exc:
        raise FedriskError(f"{path}: not a signed tree head ({exc})") from None
