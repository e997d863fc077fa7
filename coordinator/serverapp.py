"""The coordinator's Flower ServerApp: enrollment, federated bagging rounds, cross-site matching.

Run configuration (``[tool.flwr.app.config]``, or ``flwr run … --run-config``):

- ``federation`` (name), ``run`` (a stable run name: a restarted ServerApp with the same name
  resumes after the last completed round), ``rounds``, ``trees`` (per node and round),
  ``min-nodes`` (a round with fewer answers fails, naming who dropped), ``nodes`` (how many to
  wait for before starting), ``key-creator`` (the site id that makes a new epoch),
  ``rotate`` (make a new epoch even if every member holds one), ``round-timeout`` (s);
- ``match``: matching jobs to run after training (``rounds = 0`` for matching alone), comma
  separated, or ``all``; ``window``: ``all`` or a month ``YYYY-MM``;
- ``state-dir``: the coordinator's own folder: ``registry/`` (the identity files the bureau
  registered; without it every identity that proves its key is accepted, for a demo), the
  public HE context of each epoch, the ledger of each run, and ``report-<run>.json``.

The coordinator holds no secret: it relays sealed envelopes and sealed trees it cannot open.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from flwr.app import Context, UserConfig
from flwr.serverapp import Grid, ServerApp

from fedrisk.coordinator.enrollment import EnrollmentError, enroll, load_registry
from fedrisk.coordinator.exchange import Exchange, grid_exchange
from fedrisk.coordinator.matching import JobReport, run_jobs
from fedrisk.coordinator.training import Ledger, RoundReport, Settings, publish, run_rounds
from fedrisk.crypto.identity import PublicIdentity
from fedrisk.protos.matching import JOBS, MatchTask, check_window

app = ServerApp()
log = logging.getLogger("fedrisk.coordinator")


@app.main()
def main(grid: Grid, context: Context) -> None:
    _log_with_flower()
    config = context.run_config
    settings = Settings(
        federation=str(config.get("federation", "fedrisk")),
        run=str(config.get("run", "run-1")),
        rounds=_number(config, "rounds", 3),
        trees=_number(config, "trees", 10),
        min_nodes=_number(config, "min-nodes", 2),
    )
    state = Path(str(config.get("state-dir", "coordinator-state")))
    state.mkdir(parents=True, exist_ok=True)
    timeout = float(_number(config, "round-timeout", 300))
    node_ids = _wait_for_nodes(grid, _number(config, "nodes", settings.min_nodes), timeout)
    exchange = grid_exchange(grid, timeout, group=settings.run)
    registry_dir = state / "registry"
    registry = load_registry(registry_dir) if registry_dir.is_dir() else None
    enrolled = enroll(
        exchange,
        node_ids,
        settings.federation,
        registry,
        str(config.get("key-creator", "")),
        rotate=bool(config.get("rotate", False)),
    )
    if enrolled.public_context is not None:
        (state / f"he-public-epoch-{enrolled.epoch}.bin").write_bytes(enrolled.public_context)
    if len(enrolled.nodes) < settings.min_nodes:
        raise EnrollmentError(f"{len(enrolled.nodes)} members, fewer than {settings.min_nodes}")
    path = state / f"report-{settings.run}.json"
    if settings.rounds > 0:
        ledger = Ledger.load(state / f"ledger-{settings.run}-epoch-{enrolled.epoch}.jsonl")

        def written(report: RoundReport) -> None:  # each round, so a stopped run keeps its own
            _write_report(path, settings, enrolled.epoch, [report], {})

        _, final = run_rounds(exchange, enrolled.nodes, enrolled.epoch, settings, ledger, written)
        bundles = publish(exchange, enrolled.nodes, enrolled.epoch, settings, ledger, final)
        _write_report(path, settings, enrolled.epoch, [], bundles)
    else:
        _write_report(path, settings, enrolled.epoch, [], {})
    jobs = _jobs(str(config.get("match", "")))
    if jobs:
        saved = state / f"he-public-epoch-{enrolled.epoch}.bin"
        public = enrolled.public_context or saved.read_bytes()
        window = check_window(str(config.get("window", "all")))
        tasks = [
            MatchTask(settings.federation, enrolled.epoch, settings.run, j, window) for j in jobs
        ]
        reports = _match(exchange, enrolled.nodes, public, tasks)
        _write_matching(path, reports)


def _jobs(text: str) -> list[str]:
    """The jobs of the ``match`` run config: names separated by commas, or ``all``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(JOBS)
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise ValueError(f"run config match: unknown jobs {unknown}; known: {', '.join(JOBS)}")
    return names


def _match(
    exchange: Exchange,
    nodes: dict[int, PublicIdentity],
    public_context: bytes,
    tasks: list[MatchTask],
) -> list[JobReport]:
    window = tasks[0].window

    def step(name: str) -> None:
        log.info("matching (%s): %s", window, name)

    return run_jobs(exchange, nodes, public_context, tasks, step)


def _write_matching(path: Path, reports: list[JobReport]) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    body["matching"] = [asdict(report) for report in reports]
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")


def _number(config: UserConfig, key: str, default: int) -> int:
    value = config.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"run config {key!r} must be a number, got {value!r}")
    return int(value)


def _log_with_flower() -> None:
    """Flower streams what its "flwr" logger writes to ``flwr run --stream``: ours joins it."""
    ours = logging.getLogger("fedrisk")
    ours.setLevel(logging.INFO)
    for handler in logging.getLogger("flwr").handlers:
        if handler not in ours.handlers:
            ours.addHandler(handler)


def _wait_for_nodes(grid: Grid, wanted: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= wanted or time.monotonic() > deadline:
            log.info("%d nodes connected (waited for %d)", len(nodes), wanted)
            return nodes
        time.sleep(1.0)


def _write_report(
    path: Path,
    settings: Settings,
    epoch: int,
    reports: list[RoundReport],
    bundles: dict[str, str],
) -> None:
    """Add ``reports`` (and ``bundles``) to the run's report: rounds of earlier attempts of the
    same run and epoch stay, a round run again replaces its earlier report."""
    rounds = [asdict(report) for report in reports]
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if previous and previous.get("epoch") == epoch:
        done = {r["round"] for r in rounds}
        rounds = [r for r in previous["rounds"] if r["round"] not in done] + rounds
        bundles = bundles or previous.get("bundles", {})
    rounds.sort(key=lambda r: int(r["round"]))
    body = {"settings": asdict(settings), "epoch": epoch, "rounds": rounds, "bundles": bundles}
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")
