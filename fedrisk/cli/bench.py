"""``fedrisk bench …``: measurements an operator can rerun on their own machines."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedrisk.cli.render import console, fail
from fedrisk.models.errors import FedriskError

app = typer.Typer(help="Benchmarks over the real code paths.", no_args_is_help=True)


@app.command("federated-auc")
def federated_auc_command(
    table: Annotated[Path, typer.Option("--table", help="A numeric CSV with a 0/1 label.")],
    label: Annotated[str, typer.Option("--label", help="The label column.")],
    nodes: Annotated[int, typer.Option("--nodes", min=2, max=20, help="Nodes to split over.")] = 3,
    split: Annotated[
        str, typer.Option("--split", help="random (equal shares) or skewed (unequal, non-IID).")
    ] = "random",
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Federated rounds.")] = 5,
    trees: Annotated[int, typer.Option("--trees", min=1, help="Trees per node and round.")] = 10,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Keep node homes and logs here.")
    ] = None,
) -> None:
    """Centralized LightGBM on the union vs federated bagging over real Flower processes; the
    last line printed is one JSON object."""
    from fedrisk.cli.fedauc import run

    if split not in ("random", "skewed"):
        raise fail(FedriskError(f"--split is random or skewed, not {split!r}"))
    with tempfile.TemporaryDirectory(prefix="fedrisk-fedauc-") as tmp:
        where = workdir if workdir is not None else Path(tmp)
        try:
            with console.status(f"{nodes} nodes, {rounds} rounds over Flower …"):
                outcome = run(table, label, nodes, split, rounds, trees, where)
        except (FedriskError, RuntimeError) as error:
            raise fail(FedriskError(str(error))) from None
    shown = Table(title=f"{table.name}: {outcome.rows:,} rows over {nodes} nodes ({split})")
    for column in ("model", "AUC", "PR-AUC"):
        shown.add_column(column, justify="right" if column != "model" else "left")
    for name, auc, pr_auc in (
        ("centralized (union)", outcome.central_auc, outcome.central_pr_auc),
        ("federated (bagging)", outcome.federated_auc, outcome.federated_pr_auc),
    ):
        shown.add_row(name, f"{auc:.4f}", f"{pr_auc:.4f}")
    console.print(shown)
    per_round = sorted(outcome.round_seconds)[len(outcome.round_seconds) // 2]
    console.print(
        f"rows per node (positives): {', '.join(f'{r:,} ({p:,})' for r, p in outcome.parts)}; "
        f"run {outcome.seconds:.1f} s, median round {per_round:.1f} s; sent per node "
        f"{', '.join(f'{s} {b / 1024:.0f} KiB' for s, b in outcome.bytes_per_node.items())}; "
        f"relayed to each node {outcome.bytes_to_each_node / 1024:.0f} KiB"
    )
    summary = {
        "centralized_auc": round(outcome.central_auc, 6),
        "federated_auc": round(outcome.federated_auc, 6),
        "centralized_pr_auc": round(outcome.central_pr_auc, 6),
        "federated_pr_auc": round(outcome.federated_pr_auc, 6),
        "nodes": nodes,
        "split": split,
        "rounds": rounds,
        "trees": trees,
        "rows": outcome.rows,
        "seconds": round(outcome.seconds, 2),
        "median_round_seconds": round(per_round, 2),
        "bytes_per_node": outcome.bytes_per_node,
    }
    print(json.dumps(summary))
