"""Federated vs centralized AUC on generated claims, over real Flower processes.

    python bench/federated_auc.py [--sites 3] [--settlements 20000] [--seed 1]
        [--rounds 5] [--trees 10] [--data DIR]

Setup (timed apart): generates contract-v1 data (or takes ``--data``), ingests every site
into a node home and exports its labelled claims features (``fedrisk node features``); the
union is one numeric table. Then, for each case of the issue's target — 3 nodes and 5 nodes
with a random split, 3 nodes with a skewed split (unequal sizes and fraud rates) — it runs
``fedrisk bench federated-auc``'s comparison: LightGBM trained centrally on the union of the
nodes' training rows vs federated bagging through a SuperLink and N SuperNodes (TLS, node
authentication), both scored on the union of the held-out rows. Prints one table and the
target check (federated AUC within 0.01 of centralized).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import generate, machine_line, operator, site_names
from fedrisk.cli.fedauc import Outcome, run
from fedrisk.models.tables import read_feature_table
from fedrisk.node.home import init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.training import write_feature_table

CASES = ((3, "random"), (5, "random"), (3, "skewed"))
TARGET_GAP = 0.01


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    console = Console(width=160)
    import flwr
    import lightgbm

    machine_line(console, f"flwr {flwr.__version__}, lightgbm {lightgbm.__version__}")
    with tempfile.TemporaryDirectory(prefix="fedrisk-fedauc-") as tmp:
        work = Path(tmp)
        data = args.data if args.data is not None else _generated(console, args, work / "data")
        table = _table(console, data, work)
        outcomes = []
        for nodes, split in CASES:
            started = time.perf_counter()
            outcome = run(
                table, "label", nodes, split, args.rounds, args.trees, work / f"{nodes}{split}"
            )
            outcomes.append((nodes, split, outcome))
            console.print(
                f"{nodes} nodes, {split}: federated {outcome.federated_auc:.4f} vs centralized "
                f"{outcome.central_auc:.4f} ({time.perf_counter() - started:.0f} s)"
            )
    console.print(_report(outcomes, args))
    gaps = [o.central_auc - o.federated_auc for _, _, o in outcomes]
    verdict = "met" if max(gaps) <= TARGET_GAP else "NOT met"
    console.print(
        f"target federated AUC within {TARGET_GAP} of centralized (3 and 5 nodes, skewed split):"
        f" {verdict} (largest gap {max(gaps):+.4f})"
    )
    return 0


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--settlements", type=int, default=20_000, help="per site")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trees", type=int, default=10, help="per node and round")
    parser.add_argument("--data", type=Path, default=None, help="existing exports")
    return parser.parse_args(argv)


def _generated(console: Console, args: argparse.Namespace, out: Path) -> Path:
    generate(console, args, out)
    return out


def _table(console: Console, data: Path, work: Path) -> Path:
    """Every site ingested into its node home; the union of their labelled features."""
    started = time.perf_counter()
    parts = []
    for site in site_names(data):
        folder = data / site
        home = init_home(work / "homes" / site, site)
        ingest(
            operator(home, "ingest"),
            *(folder / f for f in ("settlements.csv", "lines.csv", "labels.csv")),
        )
        write_feature_table(operator(home, "training"), work / f"{site}.csv")
        parts.append(read_feature_table(work / f"{site}.csv", "label"))
    features = np.vstack([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    names = parts[0][2].names
    table = pa.table({**{n: features[:, i] for i, n in enumerate(names)}, "label": labels})
    path = work / "features.csv"
    pv.write_csv(table, path)
    console.print(
        f"setup: {len(parts)} sites ingested, {len(labels):,} labelled rows "
        f"({int(labels.sum()):,} fraud) in {time.perf_counter() - started:.0f} s"
    )
    return path


def _report(outcomes: list[tuple[int, str, Outcome]], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"federated bagging ({args.rounds} rounds x {args.trees} trees a node) vs "
        "centralized LightGBM (same parameters, rounds x trees iterations)",
        caption="AUC and PR-AUC on the union of the nodes' held-out rows; bytes: what each "
        "node sent over the run, and what was relayed to each",
    )
    for name in ("nodes", "split", "rows", "central AUC", "federated AUC", "gap",
                 "central PR-AUC", "federated PR-AUC", "run s", "median round s",
                 "sent/node KiB", "relayed/node KiB"):  # fmt: skip
        table.add_column(name, justify="right")
    for nodes, split, o in outcomes:
        sent = sorted(o.bytes_per_node.values())
        table.add_row(
            str(nodes), split, f"{o.rows:,}", f"{o.central_auc:.4f}", f"{o.federated_auc:.4f}",
            f"{o.federated_auc - o.central_auc:+.4f}", f"{o.central_pr_auc:.4f}",
            f"{o.federated_pr_auc:.4f}", f"{o.seconds:.0f}",
            f"{sorted(o.round_seconds)[len(o.round_seconds) // 2]:.1f}",
            f"{sent[len(sent) // 2] / 1024:.0f}", f"{o.bytes_to_each_node / 1024:.0f}",
        )  # fmt: skip
    return table


if __name__ == "__main__":
    raise SystemExit(main())
