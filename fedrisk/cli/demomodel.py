"""The demo's local models: each node trains on its own labels, and a demo model owner signs.

Until the federated trainer exists (a later issue), every demo node trains a model on its own
labelled settlements; a demo model owner (its key in WORKDIR/model-owner/) signs the bundle,
each node trusts that owner, and the bundle is pushed and activated — the same steps, through
the same commands' code, that a bureau's model owner and a hospital's IT would run.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from fedrisk.cli.access import open_access
from fedrisk.cli.render import console
from fedrisk.crypto.identity import Identity
from fedrisk.models.bundle import sign_bundle
from fedrisk.models.errors import FedriskError
from fedrisk.node import registry
from fedrisk.node.home import open_home
from fedrisk.node.training import train_node

OWNER = "demo-model-owner"


def demo_owner(workdir: Path) -> Identity:
    """The demo's model owner (created once, then reused)."""
    folder = workdir / "model-owner"
    key = folder / f"{OWNER}.key"
    if key.is_file():
        return Identity.load(key)
    folder.mkdir(parents=True, exist_ok=True)
    owner = Identity.generate(OWNER)
    owner.save(key)
    return owner


def local_model(workdir: Path, site_id: str, owner: Identity) -> dict[str, str]:
    """Train (once), sign, trust, push and activate a site's own model; a row for the table."""
    node = open_home(workdir / site_id)
    out = node.root / "local-model"
    try:
        if not (out / "signature.json").is_file():
            with console.status(f"{site_id}: training a local model …"):
                train_node(open_access(node, "operator", "training"), out)
            sign_bundle(out, owner)
        node.trust_owner(owner.public)
        bundle = registry.push(open_access(node, "operator", "models"), out)
        registry.activate(open_access(node, "operator", "models"), bundle.bundle_id)
    except (FedriskError, ValueError) as error:  # e.g. too few labelled settlements
        return {"site": site_id, "bundle": "—", "auc": "—", "note": f"no local model: {error}"}
    metrics = bundle.metrics
    auc = f"{metrics['auc']:.3f}"
    if "auc_model_only" in metrics:
        auc += f" (model-only fraud {metrics['auc_model_only']:.3f})"
    return {"site": site_id, "bundle": bundle.bundle_id, "auc": auc, "note": "active"}


def models_table(rows: list[dict[str, str]]) -> Table:
    table = Table(title="local risk models (held-out AUC), signed by the demo model owner")
    for column in ("site", "bundle", "auc", "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["site"], row["bundle"], row["auc"], row["note"])
    return table
