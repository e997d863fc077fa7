"""The demo's federation: the nodes train one model together, then match across sites.

A SuperLink and one SuperNode per site start on localhost (TLS, node authentication) through
:class:`fedrisk.deploy.local.LocalFederation`; the operators' steps happen as they would on
real hosts: the nodes trust each other's identity files, the ServerApp enrolls them (the first
site makes the epoch), runs the bagging rounds on each node's labelled claims features and
publishes the model; the demo model owner signs it; every node trusts that owner, pushes and
activates the bundle. A second run matches across every site (all five cross-site jobs); the
coordinator sees only tokens and ciphertexts, each node writes its flags under HOME/matching/.
Every process started is stopped before the demo goes on to screening.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from fedrisk.cli.access import open_access
from fedrisk.crypto.identity import Identity
from fedrisk.deploy.local import APP_DIR, ConfigValue, FederationError, LocalFederation
from fedrisk.models.bundle import sign_bundle
from fedrisk.models.metrics import write_rounds_plot
from fedrisk.node import registry
from fedrisk.node.home import NodeHome, open_home

FEDERATION = "demo"


@dataclass(frozen=True)
class Trained:
    """What the demo's federated run gave: the report, the activated bundle, the plot."""

    report: dict[str, Any]
    bundle_id: str
    plot: Path
    seconds: float


def federated_model(
    workdir: Path, sites: list[str], owner: Identity, rounds: int, trees: int
) -> Trained:
    """Enroll the sites, train over Flower, sign and activate the model at every node."""
    workdir = workdir.resolve()  # the Flower processes run in folders of their own
    homes = [open_home(workdir / site) for site in sites]
    trust_each_other(homes)
    root = workdir / "federation"
    state = root / "coordinator"
    run = time.strftime("demo-%Y%m%d-%H%M%S")
    config: dict[str, ConfigValue] = {
        "federation": FEDERATION,
        "run": run,
        "rounds": rounds,
        "trees": trees,
        "nodes": len(homes),
        "min-nodes": len(homes),
        "key-creator": homes[0].site_id,
        "state-dir": str(state),
    }
    started = time.perf_counter()
    report = _run_local(homes, config, root / "flower")
    bundle_id = _sign_and_activate(homes, report, owner, root / f"model-{run}")
    plot = root / f"rounds-{run}.png"
    _plot(report, plot)
    return Trained(report, bundle_id, plot, time.perf_counter() - started)


@dataclass(frozen=True)
class Matched:
    """What the demo's matching run gave: the coordinator's report (counts and sizes)."""

    report: dict[str, Any]
    seconds: float


def cross_site_matching(workdir: Path, sites: list[str]) -> Matched:
    """Every cross-site job over every site, in one run of the federation's app."""
    workdir = workdir.resolve()
    homes = [open_home(workdir / site) for site in sites]
    trust_each_other(homes)
    root = workdir / "federation"
    config: dict[str, ConfigValue] = {
        "federation": FEDERATION,
        "run": time.strftime("match-%Y%m%d-%H%M%S"),
        "rounds": 0,
        "nodes": len(homes),
        "min-nodes": len(homes),
        "key-creator": homes[0].site_id,
        "match": "all",
        "window": "all",
        "state-dir": str(root / "coordinator"),
    }
    started = time.perf_counter()
    report = _run_local(homes, config, root / "flower-matching")
    return Matched(report, time.perf_counter() - started)


def _run_local(
    homes: list[NodeHome], config: dict[str, ConfigValue], flower: Path
) -> dict[str, Any]:
    """One run of the app over a local SuperLink (its files in ``flower``) and a SuperNode per
    home; the coordinator's report."""
    nodes: list[dict[str, ConfigValue]] = [{"home": str(home.root)} for home in homes]
    with LocalFederation(nodes, workdir=flower) as federation:
        federation.run(APP_DIR, config, timeout=900).check()
    report: dict[str, Any] = json.loads(
        (Path(str(config["state-dir"])) / f"report-{config['run']}.json").read_text()
    )
    return report


def rounds_table(trained: Trained) -> Table:
    """Per round: who took part, the federation's held-out metrics, the time."""
    table = Table(
        title=f"federated training over Flower ({trained.seconds:.0f} s)",
        caption=f"model {trained.bundle_id}, signed by the demo model owner, active at every "
        f"node; curve: {trained.plot}",
    )
    for column in ("round", "nodes", "AUC", "PR-AUC", "s", "dropped"):
        table.add_column(column, justify="left" if column in ("round", "dropped") else "right")
    last = max(r["round"] for r in trained.report["rounds"])
    for r in trained.report["rounds"]:
        evaluation = r["evaluation"] or {}
        table.add_row(
            "final" if r["round"] == last else str(r["round"]),
            f"{len(r['accepted'])}/{r['asked']}",
            f"{evaluation['auc']:.4f}" if evaluation else "—",
            f"{evaluation['pr_auc']:.4f}" if evaluation else "—",
            f"{r['seconds']:.1f}",
            "; ".join(r["dropped"]) or "—",
        )
    return table


def trust_each_other(homes: list[NodeHome]) -> None:
    """What operators do with the identity files they exchanged out of band."""
    for home in homes:
        for other in homes:
            if other is not home:
                home.trust("federation_member", other.public_identity())


def _sign_and_activate(
    homes: list[NodeHome], report: dict[str, Any], owner: Identity, signed: Path
) -> str:
    published = report.get("bundles", {})
    if homes[0].site_id not in published:
        raise FederationError("the run published no model bundle")
    shutil.copytree(published[homes[0].site_id], signed)
    sign_bundle(signed, owner)
    bundle_id = ""
    for home in homes:
        home.trust_owner(owner.public)
        bundle = registry.push(open_access(home, "operator", "models"), signed)
        registry.activate(open_access(home, "operator", "models"), bundle.bundle_id)
        bundle_id = bundle.bundle_id
    return bundle_id


def _plot(report: dict[str, Any], png: Path) -> None:
    evaluated = [r for r in report["rounds"] if r["evaluation"]]
    write_rounds_plot(
        [r["round"] - 1 for r in evaluated],  # the model evaluated in round r has r-1 rounds
        [r["evaluation"]["auc"] for r in evaluated],
        [r["evaluation"]["pr_auc"] for r in evaluated],
        png,
        f"federated bagging, {len(report['rounds'][0]['accepted'])} nodes",
    )
