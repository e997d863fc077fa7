"""``fedrisk federation …``: join the federation (node operators) and run it (bureau operators).

Node operators trust the identity files of the other members (``trust``) and see which epoch
their node holds (``status``). Bureau operators launch runs of fedrisk's Flower app against a
SuperLink configured in their ``$FLWR_HOME/config.toml`` (``train``, ``rotate``): these wrap
``flwr run deploy/app <superlink> --stream --run-config …`` and then ask the SuperLink how the
run ended, since ``flwr run --stream`` exits 0 even when the ServerApp failed.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedrisk.cli.access import HomeOption
from fedrisk.cli.matchview import STEPS, follow_matching, matching_table
from fedrisk.cli.render import console, fail, stage_progress
from fedrisk.crypto.identity import IdentityError, PublicIdentity
from fedrisk.deploy.local import APP_DIR, ConfigValue, config_arg
from fedrisk.models.errors import FedriskError
from fedrisk.node.home import open_home
from fedrisk.node.membership import MembershipError, load
from fedrisk.protos.matching import JOBS, PayloadError, check_window

app = typer.Typer(
    help="Join and run the federation: trust members, train, rotate the epoch.",
    no_args_is_help=True,
)

SuperlinkOption = Annotated[
    str, typer.Option("--superlink", help="A SuperLink of $FLWR_HOME/config.toml.")
]
StateOption = Annotated[
    Path, typer.Option("--state-dir", help="The coordinator's folder (on the SuperLink host).")
]
FederationOption = Annotated[str, typer.Option("--federation", help="The federation's name.")]
NodesOption = Annotated[int, typer.Option("--nodes", min=1, help="SuperNodes to wait for.")]
CreatorOption = Annotated[
    str, typer.Option("--key-creator", help="Site id of the node that makes new epochs.")
]


@app.command("trust")
def trust_command(
    identity: Annotated[Path, typer.Argument(help="A member's identity file (node identity).")],
    home: HomeOption,
) -> None:
    """Trust another node as a federation member (after checking its fingerprint with its
    operator out of band): this node enrolls with it and takes sealed keys and trees from it."""
    try:
        public = PublicIdentity.from_json(json.loads(identity.read_text(encoding="utf-8")))
        added = open_home(home).trust("federation_member", public)
    except (OSError, ValueError, IdentityError, FedriskError) as error:
        raise fail(FedriskError(f"{identity}: {error}")) from None
    state = "now trusted" if added else "was already trusted"
    console.print(f"{public.site_id} (fingerprint {public.fingerprint}) {state} as a member")


@app.command("status")
def status_command(home: HomeOption, federation: FederationOption = "fedrisk") -> None:
    """The epoch this node holds (its members and key creator) and the members it trusts."""
    try:
        node = open_home(home)
        trusted = node.trusted("federation_member")
        try:
            membership = load(node, federation)
        except MembershipError as error:
            console.print(str(error))
            membership = None
    except FedriskError as error:
        raise fail(error) from None
    table = Table(title=f"{node.site_id}: federation {federation}")
    for column in ("member", "fingerprint", "trusted here", "in the epoch"):
        table.add_column(column)
    members = {m.fingerprint: m for m in membership.members} if membership else {}
    for fingerprint, identity in sorted({**trusted, **members}.items()):
        table.add_row(
            identity.site_id,
            fingerprint,
            "yes" if fingerprint in trusted else "—",
            "yes" if fingerprint in members else "—",
        )
    console.print(table)
    if membership is not None:
        console.print(f"epoch {membership.epoch}, made by {membership.creator}")


@app.command("train")
def train_command(
    superlink: SuperlinkOption,
    state_dir: StateOption,
    federation: FederationOption = "fedrisk",
    run: Annotated[str, typer.Option("--run", help="Run name (same name: resume).")] = "run-1",
    rounds: Annotated[int, typer.Option("--rounds", min=1)] = 3,
    trees: Annotated[int, typer.Option("--trees", min=1, help="Per node and round.")] = 10,
    nodes: NodesOption = 2,
    min_nodes: Annotated[int, typer.Option("--min-nodes", min=1)] = 2,
    key_creator: CreatorOption = "",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole run.")] = 3600,
) -> None:
    """Enroll (a new epoch if needed) and train; the bundles wait at each node for signing."""
    config: dict[str, ConfigValue] = {
        "federation": federation,
        "run": run,
        "rounds": rounds,
        "trees": trees,
        "nodes": nodes,
        "min-nodes": min_nodes,
        "key-creator": key_creator,
        "state-dir": str(state_dir.resolve()),
    }
    _run_app(superlink, config, timeout)
    report = json.loads((state_dir / f"report-{run}.json").read_text(encoding="utf-8"))
    for site, bundle in sorted(report.get("bundles", {}).items()):
        console.print(f"{site}: unsigned bundle {bundle}", soft_wrap=True)


@app.command("rotate")
def rotate_command(
    superlink: SuperlinkOption,
    state_dir: StateOption,
    key_creator: CreatorOption,
    federation: FederationOption = "fedrisk",
    nodes: NodesOption = 2,
    timeout: Annotated[float, typer.Option("--timeout")] = 600,
) -> None:
    """Make a new epoch (new federation secret and HE keys), sealed to every trusted member."""
    config: dict[str, ConfigValue] = {
        "federation": federation,
        "run": "rotate",
        "rounds": 0,
        "nodes": nodes,
        "min-nodes": 1,
        "key-creator": key_creator,
        "rotate": True,
        "state-dir": str(state_dir.resolve()),
    }
    _run_app(superlink, config, timeout)
    report = json.loads((state_dir / "report-rotate.json").read_text(encoding="utf-8"))
    console.print(f"federation {federation}: epoch {report['epoch']} is in use")


@app.command("match")
def match_command(
    superlink: SuperlinkOption,
    state_dir: StateOption,
    job: Annotated[
        str,
        typer.Option("--job", help=f"A job ({', '.join(JOBS)}), several joined by commas, or all."),
    ],
    window: Annotated[str, typer.Option("--window", help="all, or a month YYYY-MM.")] = "all",
    federation: FederationOption = "fedrisk",
    run: Annotated[str, typer.Option("--run", help="Run name.")] = "match",
    nodes: NodesOption = 2,
    key_creator: CreatorOption = "",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole run.")] = 3600,
) -> None:
    """Cross-site matching: each node's flags go to HOME/matching/; the coordinator sees only
    blind tokens and ciphertexts (docs/privacy.md)."""
    jobs = list(JOBS) if job == "all" else [j.strip() for j in job.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown or not jobs:
        raise fail(FedriskError(f"--job {job!r}: unknown job; known: {', '.join(JOBS)} or all"))
    try:
        check_window(window)
    except PayloadError as error:
        raise fail(FedriskError(f"--window: {error}")) from None
    config: dict[str, ConfigValue] = {
        "federation": federation,
        "run": run,
        "rounds": 0,
        "nodes": nodes,
        "min-nodes": 2,
        "key-creator": key_creator,
        "match": ",".join(jobs),
        "window": window,
        "state-dir": str(state_dir.resolve()),
    }
    with stage_progress() as bar:
        task = bar.add_task("matching", total=len(STEPS))
        _run_app(superlink, config, timeout, lambda line: follow_matching(line, bar, task))
    report = json.loads((state_dir / f"report-{run}.json").read_text(encoding="utf-8"))
    console.print(matching_table(report.get("matching", [])))


def _run_app(
    superlink: str,
    config: dict[str, ConfigValue],
    timeout: float,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """``flwr run`` the app, echo its stream as it comes (or hand each line to ``on_line``),
    then fail unless the run completed."""
    flwr = str(Path(sys.executable).parent / "flwr")
    argv = [flwr, "run", str(APP_DIR), superlink, "--stream", "--run-config", config_arg(config)]
    echo = on_line or (
        lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
    )
    lines: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                echo(line.rstrip("\n"))
        finally:
            timer.cancel()
    if process.returncode == -signal.SIGKILL:
        raise fail(FedriskError(f"the run did not finish within {timeout:.0f} s"))
    started = re.search(r"Successfully started run (\d+)", "".join(lines))
    if process.returncode != 0 or started is None:
        tail = "".join(lines)[-2000:]
        raise fail(FedriskError(f"flwr run failed ({process.returncode}): {tail}"))
    status, details = _final_status(flwr, superlink, started.group(1))
    if status != "finished:completed":
        raise fail(FedriskError(f"run {started.group(1)} ended {status}: {details}"))


def _final_status(flwr: str, superlink: str, run_id: str) -> tuple[str, str]:
    """The run's status once the SuperLink says it finished (it may lag the stream's end)."""
    ls = [flwr, "ls", superlink, "--run-id", run_id, "--format", "json"]
    status, details = "unknown", ""
    for _ in range(60):
        listed = subprocess.run(ls, capture_output=True, text=True, timeout=60, check=False)
        text = listed.stdout[listed.stdout.find("{") :] if "{" in listed.stdout else "{}"
        for run in json.loads(text).get("runs", []):
            status, details = str(run.get("status")), str(run.get("status-details", ""))
        if status.startswith("finished"):
            break
        time.sleep(0.5)
    return status, details
