"""What both benchmarks start from: their options, the data (generated or given), the machine."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from rich.console import Console

from fedrisk.crypto.identity import Identity
from fedrisk.models.bundle import Bundle, sign_bundle
from fedrisk.node import registry
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.home import NodeHome
from fedrisk.node.training import TrainReport, train_node


def parse_options(description: str, argv: list[str] | None) -> argparse.Namespace:
    """``--sites --settlements --repeats --seed --data``, as every benchmark takes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--settlements", type=int, default=100_000, help="per site")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data", type=Path, default=None, help="existing exports, one folder a site"
    )
    return parser.parse_args(argv)


def machine_line(console: Console, libraries: str) -> None:
    """Print the machine and the versions the numbers were measured with."""
    console.print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, {libraries}"
    )


def generate(console: Console, args: argparse.Namespace, out: Path) -> float:
    """Generate the synthetic data the options ask for into ``out``; the seconds it took."""
    from fedrisk.synth import generate_dataset

    started = time.perf_counter()
    generate_dataset(out, sites=args.sites, settlements=args.settlements, seed=args.seed)
    seconds = time.perf_counter() - started
    console.print(f"generation: {args.sites} x {args.settlements:,} settlements in {seconds:.1f} s")
    return seconds


def site_names(data: Path) -> list[str]:
    """The site folders (with settlements.csv) of a data folder."""
    return sorted(p.name for p in data.iterdir() if (p / "settlements.csv").is_file())


def operator(home: NodeHome, purpose: str) -> SiteAccess:
    """The benchmark's access to a node, as an operator (audited like any other)."""
    return SiteAccess.open(home, Principal("bench", "operator"), purpose)


def activate_local_model(
    home: NodeHome, bundle: Path, owner: Identity
) -> tuple[Bundle, TrainReport]:
    """A model trained on the node's own labels into ``bundle``, signed by ``owner``, whom the
    node then trusts, pushed and activated: the node as it runs once a model is in use."""
    report = train_node(operator(home, "training"), bundle)
    sign_bundle(bundle, owner)
    home.trust_owner(owner.public)
    pushed = registry.push(operator(home, "models"), bundle)
    return registry.activate(operator(home, "models"), pushed.bundle_id), report
