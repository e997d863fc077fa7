"""``fedrisk model …``: what model owners and node operators run for the model library (模型库)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedrisk.cli.access import HomeOption, OperatorRole, open_access
from fedrisk.cli.render import console, fail
from fedrisk.crypto.identity import Identity, IdentityError, PublicIdentity
from fedrisk.models.bundle import sign_bundle, write_bundle
from fedrisk.models.errors import FedriskError
from fedrisk.models.tables import read_feature_table
from fedrisk.models.training import train
from fedrisk.node import registry
from fedrisk.node.home import open_home
from fedrisk.node.training import train_node

app = typer.Typer(
    help="Model library: train, sign, push to a node, list, activate, roll back.",
    no_args_is_help=True,
)

BundleArgument = Annotated[Path, typer.Argument(help="A model bundle folder.")]


@app.command("keygen")
def keygen_command(
    owner: Annotated[str, typer.Option("--owner", help="The model owner's name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for OWNER.key and OWNER.pub.json.")],
) -> None:
    """Create a model owner's signing key (0600) and its public half to give to nodes."""
    out.mkdir(parents=True, exist_ok=True)
    identity = Identity.generate(owner)
    try:
        identity.save(out / f"{owner}.key")
    except FileExistsError:
        raise fail(FedriskError(f"{out / owner}.key exists; keys are never overwritten")) from None
    public = out / f"{owner}.pub.json"
    public.write_text(json.dumps(identity.public.to_json(), indent=2) + "\n", encoding="utf-8")
    console.print(f"owner key {out / owner}.key (keep it secret); give nodes {public}")


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", help="A new folder for the (unsigned) bundle.")],
    home: Annotated[
        Path | None, typer.Option("--home", help="Train on this node's labelled data.")
    ] = None,
    table: Annotated[
        Path | None, typer.Option("--table", help="Or: a numeric feature table (CSV).")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="The label column of --table.")] = "label",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the trees.")] = 7,
    as_role: OperatorRole = "operator",
) -> None:
    """Train a LightGBM risk model (early stopping, held-out AUC and PR-AUC, ROC/PR curves)."""
    if (home is None) == (table is None):
        raise fail(FedriskError("give exactly one of --home (a node) and --table (a CSV)"))
    try:
        with console.status("training …"):
            if home is not None:
                node = open_home(home)
                metrics = train_node(open_access(node, as_role, "training"), out, seed).metrics
            else:
                assert table is not None
                metrics = _train_table(table, label, out, seed)
    except (FedriskError, ValueError) as error:
        raise fail(FedriskError(str(error))) from None
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "auc" in k)
    console.print(f"bundle {out} (unsigned): held-out {shown}; curves in roc.png, pr.png")


def _train_table(table: Path, label: str, out: Path, seed: int) -> dict[str, float]:
    features, labels, spec = read_feature_table(table, label)
    trained = train(features, labels, list(spec.names), seed)
    metadata = {
        "source": f"table {table.name}",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": label,
        "rows": len(labels),
        "positives": int(labels.sum()),
        "feature_spec": spec.version,
        "seed": seed,
        "lightgbm": version("lightgbm"),
    }
    write_bundle(out, trained, spec, metadata, labels[trained.held_out])
    return trained.metrics


@app.command("sign")
def sign_command(
    bundle: BundleArgument,
    key: Annotated[Path, typer.Option("--key", help="The model owner's key (OWNER.key).")],
) -> None:
    """Sign every file of a bundle with the model owner's Ed25519 key."""
    try:
        owner = Identity.load(key)
        bundle_id = sign_bundle(bundle, owner)
    except (FedriskError, IdentityError) as error:
        raise fail(FedriskError(str(error))) from None
    console.print(f"signed bundle {bundle_id} as {owner.site_id} ({owner.public.fingerprint})")


@app.command("push")
def push_command(
    bundle: BundleArgument, home: HomeOption, as_role: OperatorRole = "operator"
) -> None:
    """Verify a signed bundle against the node's trusted owners and add it to its registry."""
    try:
        node = open_home(home)
        pushed = registry.push(open_access(node, as_role, "models"), bundle)
    except FedriskError as error:
        raise fail(error) from None
    console.print(f"pushed bundle {pushed.bundle_id} (owner {pushed.owner}) to {node.site_id}")


@app.command("list")
def list_command(home: HomeOption, as_role: OperatorRole = "operator") -> None:
    """The bundles in a node's registry; the active one is marked."""
    try:
        node = open_home(home)
        rows = registry.listing(open_access(node, as_role, "models"))
    except FedriskError as error:
        raise fail(error) from None
    table = Table(title=f"models at {node.site_id}")
    for column in ("bundle", "owner", "trained", "source", "AUC", "PR-AUC", "active"):
        table.add_column(column)
    for row in rows:
        metrics, meta = row["metrics"], row["metadata"]
        table.add_row(
            row["bundle_id"],
            str(row["owner"]),
            str(meta.get("trained_at", "")),
            str(meta.get("source", "")),
            f"{metrics.get('auc', float('nan')):.4f}",
            f"{metrics.get('pr_auc', float('nan')):.4f}",
            "[green]active[/]" if row["active"] else "",
        )
    console.print(table)


@app.command("activate")
def activate_command(
    bundle_id: Annotated[str, typer.Argument(help="A bundle id from `fedrisk model list`.")],
    home: HomeOption,
    as_role: OperatorRole = "operator",
) -> None:
    """Make a pushed bundle the one `fedrisk node screen` scores with (verified again)."""
    try:
        node = open_home(home)
        bundle = registry.activate(open_access(node, as_role, "models"), bundle_id)
    except FedriskError as error:
        raise fail(error) from None
    console.print(f"{node.site_id}: model {bundle.bundle_id} is active")


@app.command("rollback")
def rollback_command(home: HomeOption, as_role: OperatorRole = "operator") -> None:
    """Go back to the model that was active before the current one."""
    try:
        node = open_home(home)
        previous = registry.rollback(open_access(node, as_role, "models"))
    except FedriskError as error:
        raise fail(error) from None
    now = f"model {previous.bundle_id} is active" if previous else "no model is active"
    console.print(f"{node.site_id}: rolled back; {now}")


def trust_command(
    home: HomeOption,
    owner: Annotated[Path, typer.Option("--owner", help="A model owner's OWNER.pub.json.")],
) -> None:
    """Trust a model owner's key: bundles it signs may be pushed to this node."""
    try:
        node = open_home(home)
        public = PublicIdentity.from_json(json.loads(owner.read_text(encoding="utf-8")))
        added = node.trust_owner(public)
    except (FedriskError, IdentityError, OSError, ValueError) as error:
        raise fail(FedriskError(str(error))) from None
    state = "now trusts" if added else "already trusted"
    console.print(f"{node.site_id} {state} model owner {public.site_id} ({public.fingerprint})")
