"""PreCheck under load: an open-loop gRPC load generator against ``fedrisk node serve``.

    python bench/precheck_load.py [--rate 1000] [--seconds 60] [--step-seconds 15]
        [--step 500] [--trials 3] [--max-rate 8000] [--max-pending 256]
        [--settlements 20000] [--seed 1] [--data DIR] [--model] [--no-baseline] [--quick]

Setup (not timed): generates contract-v1 data for one hospital (or takes ``--data DIR``, one
folder a site; the first site is used), initialises a node home and ingests it, and builds the
claims to replay from the site's CSV rows: every settlement with its lines, renamed
``LOAD-<n>``, each validated with the server's own per-claim checks (a claim the contract
refuses is left out and counted). Trace codes are replaced by fresh ones except in one claim
of every :data:`DUPLICATE_EVERY`, whose boxes are then already settled in the store
(``duplicate_trace_code``); the other rules see the claims as the hospital sent them, so the
replay is a mix of clean and violating claims (the mix of verdicts is printed).
With ``--model``, a model trained on the node's own data is signed by a model owner the node
trusts and activated before the server starts, so that every claim is also scored, as at a
node that uses a federated model (without it, the check is the rules only).

Then it starts the server as a subprocess (``python -m fedrisk.cli.main node serve``), waits
for ``grpc.health.v1`` to say SERVING and, from this process, sends unary ``Check`` calls at a
fixed arrival rate (open loop: a call is sent at its scheduled time whatever the answers
before it do; latency runs from the *scheduled* time to the answer, so a stalled sender or
server cannot hide its delay). The generator runs on the same cores as the server: its cost
is part of the measurement ("load generator included"). Requests are serialised during setup
and answers parsed after each run, so the generator's per-call work is gRPC's own.

Runs: the target rate for ``--seconds`` (after a short warm-up that is not counted), then
steps from the target rate upwards by ``--step`` while the server keeps up, or to
``--max-rate``; when the first step fails already, the rate is also halved until a step passes,
then bisected twice. A step is ``--trials`` runs of ``--step-seconds`` each and is judged on its
median trial. Why the median: the machine is shared, and a disturbance of a few seconds (seen
here: an empty gRPC server at 34 ms p99) decided a whole 15-s step alone; every trial is still
printed. Each run also shows the CPU the server (its front and its check worker) and this
process used (as a share of one core), how late the sends were, and its slowest 1 % of calls
grouped into bursts (calls scheduled less than 10 ms apart): a pause of the machine shows as a
few large bursts, a check that is slow for some claims as many bursts of one or two (with
``--model``, also the share of them the model flagged, whose reasons cost TreeSHAP).

Two readings of "maximum sustainable rate", both reported; the target is judged on the first:

- **p99 <= 5 ms**: a step passes when its median p99 is at most 5 ms, no trial had an error
  and the median achieved rate is at least 98 % of the asked;
- **kept up**: the same without the bound on p99 -- every call answered OK within its deadline
  (``--deadline``, 1 s) and at least 98 % of the rate achieved. A server that cannot keep up
  builds a backlog that ends in errors (deadline, or RESOURCE_EXHAUSTED past
  ``--max-pending``) within a step of 15 s.

Each maximum is the highest rate that passed below the lowest that failed, so a lucky step
above a failed one does not count.

Baseline (skipped with ``--no-baseline``): the same warm-up, target run and steps against
gRPC's floor (``bench/grpc_floor.py``), a server like PreCheck's front that answers every claim
at once without checking it. Both servers are up at once (the idle one costs nothing) and each
trial is run against PreCheck and then against the floor, so that a disturbance of a shared
machine, which lasts minutes, meets both; the floor then goes on alone above PreCheck's last
step while it keeps up. A table puts both side by side at each rate (p99 and its ratio to the
floor's, server CPU): how much of a miss is PreCheck's own, and how much the machine's.

Exit code 0 unless the server did not start or stop cleanly (2) or an answer was not a
well-formed verdict for its claim (1); targets not met are reported, not an error.
"""

from __future__ import annotations

import argparse
import csv
import gc
import heapq
import os
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import __version__ as protobuf_version
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import activate_local_model, generate, machine_line, operator, site_names
from fedrisk.crypto.identity import Identity
from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.claimvalidate import ClaimError, check_lines, check_settlement, trimmed
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.precheckclient import channel, claim_from_json
from fedrisk.protos.fedrisk.v1 import precheck_pb2

SERVICE = precheck_pb2.DESCRIPTOR.services_by_name["PreCheckService"].full_name
CHECK_METHOD = f"/{SERVICE}/Check"

TARGET_RATE = 1_000.0  # claims/s
TARGET_SECONDS = 60.0
TARGET_P99_MS = 5.0
TARGET_MAX_RATE = 2_000.0
SHORTFALL = 0.02  # a step fails when it achieves less than 98 % of the asked rate
DUPLICATE_EVERY = 20  # one replayed claim in 20 keeps its (already settled) trace codes
MIN_RATE = 50.0  # claims/s: the lowest step tried below a failed first step
BISECTIONS = 2  # steps between the highest passed and the lowest failed rate below the first
WARM_UP_SECONDS = 2.0
SLOW = 0.99  # a run's slow calls: from this quantile of its latencies up
BURST_GAP = 0.010  # s: slow calls scheduled closer together than this are one burst
PAUSE_SECONDS = 2.0  # between runs: the server drains, its audit queue commits
START_TIMEOUT = 180.0  # the server loads the node's history before it says SERVING
STOP_TIMEOUT = 30.0
DECISION_NAMES = {
    precheck_pb2.ALLOW: "allow",
    precheck_pb2.WARN: "warn",
    precheck_pb2.BLOCK: "block",
}


@dataclass(frozen=True)
class Replay:
    """One claim as sent: its serialised request and what its verdict must echo."""

    request_id: str
    settlement_id: str
    request: bytes


@dataclass(frozen=True)
class SlowCalls:
    """A run's slowest 1 % of calls (those that set its p99), grouped by when they were scheduled.

    What made the p99 shows here. A pause of the machine (another tenant, the kernel) delays
    every call in flight and those scheduled until the backlog drains: few bursts of many calls
    each. A check that is slow for some claims (a flagged claim's reasons, say) delays those
    claims: many bursts of one or two, and with a model, ``flagged`` near all of them.
    """

    calls: int
    bursts: int
    largest: int  # calls in the largest burst
    flagged: int | None  # of the calls, how many the model flagged (None: no scores)

    def text(self) -> str:
        parts = [f"{self.calls:,} in {self.bursts:,} bursts, max {self.largest:,}"]
        if self.flagged is not None and self.calls:
            parts.append(f"{self.flagged / self.calls:.0%} flagged")
        return "; ".join(parts)


def slow_calls(
    scheduled: list[float],
    latencies: list[float],
    flagged: list[bool | None],
    q: float = SLOW,
    gap: float = BURST_GAP,
) -> SlowCalls:
    """The :class:`SlowCalls` of a run (each call's scheduled time, latency and whether its
    verdict was flagged; None when it had no score or no answer)."""
    if not latencies:
        return SlowCalls(0, 0, 0, None)
    count = max(1, round(len(latencies) * (1 - q)))
    slow = heapq.nlargest(count, range(len(latencies)), key=latencies.__getitem__)
    sizes: list[int] = []
    last = -float("inf")
    for i in sorted(slow, key=scheduled.__getitem__):
        if scheduled[i] - last < gap:
            sizes[-1] += 1
        else:
            sizes.append(1)
        last = scheduled[i]
    scored = [flagged[i] for i in slow if flagged[i] is not None]
    return SlowCalls(len(slow), len(sizes), max(sizes), sum(scored) if scored else None)


@dataclass
class RunResult:
    """One run at one arrival rate."""

    label: str
    rate: float
    seconds: float
    calls: int = 0
    latencies: list[float] = field(default_factory=list)  # s, scheduled time to answer
    lags: list[float] = field(default_factory=list)  # s, scheduled time to actual send
    codes: Counter[str] = field(default_factory=Counter)
    answered_ok: int = 0
    window: float = 0.0  # s, from the first scheduled send to the last answer
    server_cpu: float | None = None  # s of CPU the server used during the run
    client_cpu: float = 0.0  # s of CPU this process used during the run
    malformed: list[str] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    slow: SlowCalls = SlowCalls(0, 0, 0, None)

    @property
    def errors(self) -> int:
        return self.calls - self.codes.get("OK", 0)

    @property
    def achieved(self) -> float:
        return self.answered_ok / self.window if self.window > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return _percentile(self.latencies, q) * 1000.0

    def failures(self) -> list[str]:
        """Why the run is not sustainable at its rate (empty when it passed)."""
        reasons = []
        p99 = self.percentile_ms(0.99)
        if p99 > TARGET_P99_MS:
            reasons.append(f"p99 {p99:.2f} ms > {TARGET_P99_MS:g} ms")
        if self.errors:
            reasons.append(f"errors: {self.errors:,}")
        if self.achieved < self.rate * (1 - SHORTFALL):
            reasons.append(f"achieved {self.achieved:,.0f}/s < {1 - SHORTFALL:.0%} of asked")
        return reasons


@dataclass
class Step:
    """One rate of the climb for one server: ``--trials`` runs, interleaved with the other
    server's. Judged on the median trial (the machine is shared: one disturbed trial does not
    decide a rate alone, nor does one lucky trial); errors in any trial fail it."""

    rate: float
    trials: list[RunResult] = field(default_factory=list)

    def median(self, value: Callable[[RunResult], float]) -> float:
        return statistics.median(value(trial) for trial in self.trials)

    @property
    def p99_ms(self) -> float:
        return _median_p99(self.trials)

    @property
    def errors(self) -> int:
        return sum(trial.errors for trial in self.trials)

    def failures(self) -> list[str]:
        """Why the rate is not sustainable (empty when it is)."""
        reasons = []
        if self.p99_ms > TARGET_P99_MS:
            each = ", ".join(f"{t.percentile_ms(0.99):.2f}" for t in self.trials)
            reasons.append(f"median p99 {self.p99_ms:.2f} ms > {TARGET_P99_MS:g} ms ({each})")
        return reasons + self.not_kept_up()

    def not_kept_up(self) -> list[str]:
        """Why the server did not keep up with the rate (empty when it did): a call not
        answered OK within its deadline, or fewer answers than asked. The weaker reading of
        "sustainable", without a bound on p99 (see :data:`READINGS`)."""
        reasons = []
        if self.errors:
            reasons.append(f"errors: {self.errors:,}")
        achieved = self.median(lambda trial: trial.achieved)
        if achieved < self.rate * (1 - SHORTFALL):
            reasons.append(f"achieved {achieved:,.0f}/s < {1 - SHORTFALL:.0%} of asked")
        return reasons


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    console = Console(width=max(180, shutil.get_terminal_size().columns))
    machine_line(console, f"grpcio {grpc.__version__}, protobuf {protobuf_version}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"load average at start: {load} (a shared machine: others' work counts)")
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-") as tmp:
        work = Path(tmp)
        replayed = replay_setup(console, args, work)
        if replayed is None:
            return 2
        return _against_servers(console, args, *replayed, work)


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=TARGET_RATE, help="claims/s of the target run"
    )
    parser.add_argument("--seconds", type=float, default=TARGET_SECONDS, help="of the target run")
    parser.add_argument("--step-seconds", type=float, default=15.0, help="of each step up")
    parser.add_argument("--step", type=float, default=500.0, help="claims/s added per step")
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="runs of each step per server, median judged (default 3; 1 with --quick)",
    )
    parser.add_argument("--max-rate", type=float, default=8_000.0, help="highest step tried")
    parser.add_argument("--deadline", type=float, default=1.0, help="s, of every call")
    parser.add_argument("--max-pending", type=int, default=256, help="server calls at once")
    parser.add_argument("--settlements", type=int, default=20_000, help="generated, one site")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="existing exports (first site)")
    parser.add_argument(
        "--model", action="store_true", help="train and activate a model: every claim is scored"
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the same runs against gRPC's floor (bench/grpc_floor.py)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 300/s for 5 s, 3 s steps to 1,200/s"
    )
    args = parser.parse_args(argv)
    if args.trials is None:
        args.trials = 1 if args.quick else 3
    if args.trials < 1:
        parser.error("--trials: at least 1")
    args.sites = 1  # what bench.inputs.generate reads
    if args.quick:
        args.rate, args.seconds, args.step_seconds, args.step, args.max_rate = 300, 5, 3, 300, 1200
    return args


def replay_setup(
    console: Console, args: argparse.Namespace, work: Path
) -> tuple[NodeHome, list[Replay]] | None:
    """The node home and the claims to replay (``--data``'s first site, or one generated into
    ``work``); None, said on the console, when there is no site or no valid claim."""
    data = args.data if args.data is not None else _generated(console, args, work / "data")
    sites = site_names(data)
    if not sites:
        console.print(f"[red]no site folders with settlements.csv under {data}[/red]")
        return None
    home = _ingest(console, data / sites[0], work / "home")
    if args.model:
        _activate_model(console, home, work / "bundle")
    claims = _claims(console, data / sites[0], home, args.seed)
    if not claims:
        console.print("[red]no valid claim to replay[/red]")
        return None
    return home, claims


def _activate_model(console: Console, home: NodeHome, bundle: Path) -> None:
    """A model trained on the node's own data, signed by a model owner the node trusts, pushed
    and activated: the node as a hospital runs it once a federated model is in use."""
    started = time.perf_counter()
    active, _ = activate_local_model(home, bundle, Identity.generate("bench-owner"))
    seconds = time.perf_counter() - started
    console.print(f"setup: model {active.bundle_id} trained and active in {seconds:.1f} s")


def _generated(console: Console, args: argparse.Namespace, out: Path) -> Path:
    generate(console, args, out)
    return out


def _ingest(console: Console, folder: Path, root: Path) -> NodeHome:
    """A fresh node home with the site's files ingested (timed, not benchmarked)."""
    started = time.perf_counter()
    labels = folder / "labels.csv" if (folder / "labels.csv").is_file() else None
    home = init_home(root, folder.name)
    ingest(operator(home, "ingest"), folder / "settlements.csv", folder / "lines.csv", labels)
    seconds = time.perf_counter() - started
    console.print(f"setup: node home {folder.name} initialised and ingested in {seconds:.1f} s")
    return home


def _claims(console: Console, folder: Path, home: NodeHome, seed: int) -> list[Replay]:
    """Every settlement of the site's CSV rows with its lines, as a claim ``LOAD-<n>``, checked
    with the server's per-claim validation; serialised once, in a shuffled order."""
    started = time.perf_counter()
    settlements, lines = _rows(folder)
    settled_traces = {
        line["trace_code"] for rows in lines.values() for line in rows if line["trace_code"]
    }
    fresh = _fresh_trace_codes(settled_traces)
    kb = home.knowledge_base()
    claims: list[Replay] = []
    refused = duplicates = 0
    for settlement_id, settlement in settlements.items():
        n = len(claims)
        new_id, request_id = f"LOAD-{n}", f"load-{n}"
        keep_traces = n % DUPLICATE_EVERY == 0
        renamed: dict[str, str] = {}
        claim_lines = []
        for line in lines.get(settlement_id, []):
            trace = line["trace_code"]
            if trace and not keep_traces:
                trace = renamed.setdefault(trace, next(fresh))
            claim_lines.append(dict(line, settlement_id=new_id, trace_code=trace))
        data = {
            "request_id": request_id,
            "settlement": dict(settlement, settlement_id=new_id),
            "lines": claim_lines,
        }
        try:
            _validate(data, home.site_id, kb)
        except ClaimError:
            refused += 1
            continue
        duplicates += keep_traces and any(line["trace_code"] for line in claim_lines)
        request = claim_from_json(data).SerializeToString()
        claims.append(Replay(request_id, new_id, request))
    random.Random(seed).shuffle(claims)
    seconds = time.perf_counter() - started
    console.print(
        f"claims: {len(claims):,} to replay ({duplicates:,} with boxes already settled), "
        f"{refused:,} refused by the contract left out, built in {seconds:.1f} s"
    )
    return claims


def _rows(folder: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[dict[str, str]]]]:
    """The site's settlement rows by id and its line rows by settlement id, as text."""
    with (folder / "settlements.csv").open(encoding="utf-8", newline="") as handle:
        settlements = {r["settlement_id"]: r for r in csv.DictReader(handle)}
    lines: dict[str, list[dict[str, str]]] = {}
    with (folder / "lines.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            lines.setdefault(row["settlement_id"], []).append(row)
    return settlements, lines


def _fresh_trace_codes(settled: set[str]) -> Iterator[str]:
    """An endless supply of 20-digit trace codes that no stored line has."""
    n = 0
    while True:
        n += 1
        code = f"99{n:018d}"
        if code not in settled:
            yield code


def _validate(data: dict[str, Any], site_id: str, kb: KnowledgeBase) -> None:
    """Raise ClaimError when the server would answer INVALID_ARGUMENT (its own checks)."""
    settlement = trimmed(data["settlement"], SETTLEMENT_COLUMNS)
    lines = [trimmed(line, LINE_COLUMNS) for line in data["lines"]]
    check_settlement(settlement, site_id)
    check_lines(lines, settlement["settlement_id"], site_id, kb)


@dataclass
class Measured:
    """One server under load, and its runs: at the target rate and the steps."""

    name: str
    pid: int
    check: grpc.UnaryUnaryMultiCallable
    runs: list[RunResult] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    stopped: bool = False

    @property
    def malformed(self) -> list[str]:
        trials = [trial for step in self.steps for trial in step.trials]
        return [m for run in [*self.runs, *trials] for m in run.malformed]


class ServerDidNotStartError(Exception):
    """A server under test exited or did not say SERVING in time."""


def _against_servers(
    console: Console,
    args: argparse.Namespace,
    home: NodeHome,
    claims: list[Replay],
    work: Path,
) -> int:
    """PreCheck and (unless --no-baseline) gRPC's floor, both up at once and measured back to
    back at each rate; the report and the exit code."""
    servers = [("PreCheck", partial(_precheck_command, home, args.max_pending))]
    if args.baseline:
        servers.append(("gRPC floor", partial(_floor_command, args.max_pending)))
    gc.collect()
    gc.freeze()  # the setup's objects: the generator's own collections stay short
    measured: list[Measured] = []
    try:
        with ExitStack() as stack:
            for name, command_for in servers:
                measured.append(stack.enter_context(_serving(console, work, name, command_for)))
            _load(console, args, claims, measured)
    except ServerDidNotStartError:
        return 2
    finally:
        gc.unfreeze()
    _report(console, args, measured)
    for result in measured:
        if result.malformed:
            console.print(
                f"[red]{result.name}: {len(result.malformed):,} malformed verdicts, "
                f"e.g. {result.malformed[0]}[/red]"
            )
            return 1
    return 0 if all(result.stopped for result in measured) else 2


def _precheck_command(home: NodeHome, max_pending: int, target: str) -> list[str]:
    return [
        *(sys.executable, "-m", "fedrisk.cli.main", "node", "serve"),
        *("--home", str(home.root), "--listen", target, "--max-pending", str(max_pending)),
    ]


def _floor_command(max_pending: int, target: str) -> list[str]:
    script = Path(__file__).resolve().parent / "grpc_floor.py"
    return [sys.executable, str(script), "--listen", target, "--max-pending", str(max_pending)]


@contextmanager
def _serving(
    console: Console, work: Path, name: str, command_for: Callable[[str], list[str]]
) -> Iterator[Measured]:
    """A server started and SERVING, with a channel to it; stopped on the way out (whether it
    stopped cleanly is recorded). Raises :class:`ServerDidNotStartError`."""
    target = f"127.0.0.1:{_free_port()}"
    command = command_for(target)
    console.print(f"{name} server: {shlex.join(command)}")
    out_path, err_path = work / f"{name}.out", work / f"{name}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
    measured = None
    try:
        started = time.perf_counter()
        if not _wait_serving(target, process):
            console.print(f"[red]the {name} server did not start serving[/red]")
            _tail(console, err_path)
            raise ServerDidNotStartError(name)
        seconds = time.perf_counter() - started
        console.print(f"{name} server: SERVING after {seconds:.1f} s (pid {process.pid})")
        with channel(target) as opened:
            grpc.channel_ready_future(opened).result(timeout=10)
            # bytes in, bytes out: the requests were serialised in setup
            measured = Measured(name, process.pid, opened.unary_unary(CHECK_METHOD))
            yield measured
    finally:
        stopped = _stop(process)
        if measured is not None:
            measured.stopped = stopped
        if not stopped:
            console.print(
                f"[red]the {name} server did not stop cleanly "
                f"(exit code {process.returncode})[/red]"
            )
            _tail(console, err_path)


def _load(
    console: Console, args: argparse.Namespace, claims: list[Replay], servers: list[Measured]
) -> None:
    """The warm-ups, the target runs, then the steps, every server in turn at each rate, so
    that what disturbs the machine for a while meets both. The steps follow the first server
    (PreCheck); the others then go on alone above the highest rate, while they keep up. Each run
    is printed as it ends."""

    def run(server: Measured, label: str, rate: float, seconds: float) -> RunResult:
        return _run(server.check, claims, label, rate, seconds, args.deadline, server.pid)

    for server in servers:
        warm = run(server, "warm-up", args.rate, WARM_UP_SECONDS)
        console.print(f"{server.name} warm-up: {_summary(warm)} (not counted)")
    for server in servers:
        time.sleep(PAUSE_SECONDS)
        server.runs.append(run(server, "target", args.rate, args.seconds))
        console.print(f"{server.name} target run: {_summary(server.runs[-1])}")

    def step(among: list[Measured], rate: float) -> Step:
        """Each of ``among`` at ``rate``, ``--trials`` times in turn; the first one's step."""
        steps = [Step(rate) for _ in among]
        for trial in range(1, args.trials + 1):
            for server, at_rate in zip(among, steps, strict=True):
                time.sleep(PAUSE_SECONDS)
                at_rate.trials.append(run(server, f"step {trial}", rate, args.step_seconds))
                mark = "pass" if not at_rate.trials[-1].failures() else "miss"
                console.print(
                    f"{server.name} step {rate:,.0f}/s, trial {trial}/{args.trials}: "
                    f"{_summary(at_rate.trials[-1])} → {mark}"
                )
        for server, at_rate in zip(among, steps, strict=True):
            server.steps.append(at_rate)
            console.print(f"{server.name} step {rate:,.0f}/s: {_verdict_text(at_rate)}")
        return steps[0]

    # Up while the server keeps up, past the first step over 5 ms: both maxima get measured.
    _climb(partial(step, servers), args.rate, args)
    first = servers[0].steps[:1]
    if first and first[0].failures():
        _below(lambda rate: not step(servers, rate).failures(), first[0].rate)
    for server in servers[1:]:
        top = max(server.steps, key=lambda s: s.rate, default=None)
        if top is not None and not top.not_kept_up():
            _climb(partial(step, [server]), top.rate + args.step, args)


def _verdict_text(step: Step) -> str:
    """A step's result under both readings of "sustainable"."""
    if not step.failures():
        return f"pass (median p99 {step.p99_ms:.2f} ms)"
    kept = step.not_kept_up()
    return "; ".join(step.failures()) + ("" if kept else " (kept up)")


def _climb(step: Callable[[float], Step], rate: float, args: argparse.Namespace) -> None:
    """Steps from ``rate`` up by ``--step`` while the server keeps up, to ``--max-rate``."""
    while rate <= args.max_rate and not step(rate).not_kept_up():
        rate += args.step


def _below(step: Callable[[float], bool], failed: float) -> None:
    """When the first step fails, find the sustainable rate below it: halve the rate until a
    step passes (down to :data:`MIN_RATE`), then bisect :data:`BISECTIONS` times."""
    passed, rate = 0.0, failed
    while passed == 0.0 and rate / 2 >= MIN_RATE:
        rate = _rounded(rate / 2)
        if step(rate):
            passed = rate
        else:
            failed = rate
    for _ in range(BISECTIONS if passed else 0):
        rate = _rounded((passed + failed) / 2)
        if rate in (passed, failed):
            break
        if step(rate):
            passed = rate
        else:
            failed = rate


def _rounded(rate: float) -> float:
    """A rate rounded to 25 claims/s (at least 25), so the steps read well."""
    return max(25.0, round(rate / 25) * 25)


def _run(
    check: grpc.UnaryUnaryMultiCallable,
    claims: list[Replay],
    label: str,
    rate: float,
    seconds: float,
    deadline: float,
    pid: int,
) -> RunResult:
    """Send ``rate * seconds`` calls at their scheduled times; wait for every answer."""
    count = max(1, round(rate * seconds))
    interval = 1.0 / rate
    scheduled = [0.0] * count
    sent = [0.0] * count
    ended = [0.0] * count
    codes: list[grpc.StatusCode | None] = [None] * count
    answers: list[bytes | None] = [None] * count
    remaining = [count]
    lock = threading.Lock()
    all_done = threading.Event()

    def on_done(index: int, future: grpc.Future) -> None:
        ended[index] = time.perf_counter()
        code = future.code()
        codes[index] = code
        if code == grpc.StatusCode.OK:
            answers[index] = future.result()
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                all_done.set()

    def callback(index: int) -> Callable[[grpc.Future], None]:
        return lambda future: on_done(index, future)

    server_before = _process_cpu(pid)
    client_before = time.process_time()
    start = time.perf_counter() + 0.01
    for i in range(count):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0.0002:
            time.sleep(delay)
        scheduled[i] = due
        sent[i] = time.perf_counter()
        call = check.future(claims[i % len(claims)].request, timeout=deadline)
        call.add_done_callback(callback(i))
    all_done.wait(deadline + 30)
    client_cpu = time.process_time() - client_before
    server_after = _process_cpu(pid)
    result = RunResult(label, rate, seconds, calls=count, client_cpu=client_cpu)
    if server_before is not None and server_after is not None:
        result.server_cpu = server_after - server_before
    last = start
    flagged: list[bool | None] = [None] * count
    for i in range(count):
        code = codes[i]
        result.codes[code.name if code is not None else "NO ANSWER"] += 1
        if code is None:
            result.latencies.append(float("inf"))
            continue
        last = max(last, ended[i])
        result.latencies.append(ended[i] - scheduled[i])
        result.lags.append(sent[i] - scheduled[i])
        answer = answers[i]
        if answer is not None:
            result.answered_ok += 1
            flagged[i] = _verdict(result, claims[i % len(claims)], answer)
    result.window = max(seconds, last - start)
    result.slow = slow_calls(scheduled, result.latencies, flagged)
    result.latencies.sort()
    result.lags.sort()
    return result


def _verdict(result: RunResult, claim: Replay, answer: bytes) -> bool | None:
    """Count the verdict's decision and hits; note it when it is not one for this claim.
    Whether the model flagged the claim (None: no score, or not a verdict for it)."""
    try:
        verdict = precheck_pb2.Verdict.FromString(answer)
    except Exception as error:  # a protobuf DecodeError
        result.malformed.append(f"{claim.settlement_id}: undecodable ({error})")
        return None
    problems = []
    if verdict.request_id != claim.request_id:
        problems.append(f"request_id {verdict.request_id!r}")
    if verdict.settlement_id != claim.settlement_id:
        problems.append(f"settlement_id {verdict.settlement_id!r}")
    if verdict.decision not in DECISION_NAMES:
        problems.append(f"decision {verdict.decision}")
    if not verdict.kb_version or not verdict.rule_pack_version:
        problems.append("no kb or rule pack version")
    if (verdict.decision == precheck_pb2.ALLOW) and any(
        h.severity in ("warn", "block") for h in verdict.hits
    ):
        problems.append("allowed with a warn or block hit")
    if problems:
        result.malformed.append(f"{claim.settlement_id}: {', '.join(problems)}")
        return None
    result.decisions[DECISION_NAMES[verdict.decision]] += 1
    result.hits.update(h.rule_id for h in verdict.hits)
    return verdict.model.flagged if verdict.HasField("model") else None


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return ordered[rank]


def _summary(run: RunResult) -> str:
    return (
        f"{run.calls:,} calls at {run.rate:,.0f}/s, achieved {run.achieved:,.0f}/s, "
        f"{run.errors:,} errors, p50 {run.percentile_ms(0.5):.2f} ms, "
        f"p99 {run.percentile_ms(0.99):.2f} ms, max {_ms(run.percentile_ms(1.0))}"
    )


def _ms(value: float) -> str:
    return "no answer" if value == float("inf") else f"{value:.2f} ms"


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) so far of a process and its descendants (the
    server's check worker); None off Linux. A worker that was replaced counts no more."""
    total = 0.0
    for process in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if process == pid:
                return None
            continue  # a child that has just exited
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    """The process ids of a process's descendants (every thread's children, theirs, …), on
    Linux."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_children(child)]
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_serving(target: str, process: subprocess.Popen[bytes]) -> bool:
    """Poll grpc.health.v1 until the server says SERVING (False if it exits or times out)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + START_TIMEOUT
    with channel(target) as opened:
        health = health_pb2_grpc.HealthStub(opened)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM, then wait for a clean exit (killed, and False, if it does not come)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return process.returncode == 0


def _tail(console: Console, path: Path, lines: int = 20) -> None:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    for line in text:
        console.print(f"  server: {line}", markup=False, highlight=False)


def _report(console: Console, args: argparse.Namespace, measured: list[Measured]) -> None:
    for result in measured:
        if result.runs:
            title = f"{result.name}, target run: {args.rate:,.0f} claims/s for {args.seconds:g} s"
            console.print(_table(title, result.runs))
            _mix(console, result.runs[0])
        if result.steps:
            title = (
                f"{result.name}, steps: {args.trials} x {args.step_seconds:g} s each, up by "
                f"{args.step:,.0f}/s to at most {args.max_rate:,.0f}/s (below the first step if "
                "it failed); each trial's own result"
            )
            console.print(_table(title, [t for step in result.steps for t in step.trials]))
    if len(measured) > 1:
        console.print(_against_floor(measured[0], measured[1]))
    precheck = measured[0]
    _targets(console, args, precheck.runs, precheck.steps)
    for floor in measured[1:]:
        console.print(
            f"{floor.name} (answers without checking; run beside PreCheck at each rate): "
            f"{_maxima(args, floor.steps)}"
        )


def _against_floor(precheck: Measured, floor: Measured) -> Table:
    """PreCheck and the floor at each rate both were run at: p99 and server CPU, side by side
    (medians over a step's trials)."""
    table = Table(
        title=f"{precheck.name} against {floor.name}, same generator, same rates",
        caption="p99 in ms (a step's: the median of its trials, each listed); "
        "server CPU as a share of one core",
    )
    for column in ("run", "asked", "p99", "floor p99", "p99 ratio", "server CPU", "floor CPU"):
        table.add_column(column, justify="right")
    pairs = [("target", precheck.runs[:1], floor.runs[:1])]
    by_rate = {step.rate: step for step in floor.steps}
    for step in sorted(precheck.steps, key=lambda s: s.rate):
        if step.rate in by_rate:
            pairs.append(("step", step.trials, by_rate[step.rate].trials))
    for label, ours, theirs in pairs:
        if not ours or not theirs:
            continue
        p99, floor_p99 = _median_p99(ours), _median_p99(theirs)
        ratio = f"{p99 / floor_p99:.2f}x" if floor_p99 > 0 else "–"
        table.add_row(
            label,
            f"{ours[0].rate:,.0f}/s",
            _p99_cell(ours),
            _p99_cell(theirs),
            ratio,
            _median_cpu(ours),
            _median_cpu(theirs),
        )
    return table


def _median_p99(runs: list[RunResult]) -> float:
    return statistics.median(run.percentile_ms(0.99) for run in runs)


def _p99_cell(runs: list[RunResult]) -> str:
    """The median p99 of some runs, with each one's when there are several."""
    median = f"{_median_p99(runs):.2f}"
    if len(runs) == 1:
        return median
    return f"{median} ({', '.join(f'{run.percentile_ms(0.99):.1f}' for run in runs)})"


def _median_cpu(runs: list[RunResult]) -> str:
    shares = [r.server_cpu / r.window for r in runs if r.server_cpu is not None and r.window > 0]
    return f"{statistics.median(shares):.0%}" if shares else "–"


def _table(title: str, runs: list[RunResult]) -> Table:
    table = Table(title=title, caption="latencies in ms, from the scheduled send to the answer")
    for name in ("asked", "achieved", "calls"):
        table.add_column(name, justify="right")
    table.add_column("errors (by code)", min_width=24)
    for name in ("p50", "p95", "p99", "max", "send lag p99", "server CPU", "gen. CPU"):
        table.add_column(name, justify="right")
    table.add_column("slowest 1 %", no_wrap=True)
    table.add_column("result")
    for run in runs:
        by_code = [f"{n:,} {code}" for code, n in sorted(run.codes.items()) if code != "OK"]
        failures = run.failures()
        short = ", ".join(reason.split()[0].rstrip(":") for reason in failures)
        table.add_row(
            f"{run.rate:,.0f}/s",
            f"{run.achieved:,.0f}/s",
            f"{run.calls:,}",
            "\n".join(by_code) or "0",
            f"{run.percentile_ms(0.50):.2f}",
            f"{run.percentile_ms(0.95):.2f}",
            f"{run.percentile_ms(0.99):.2f}",
            _ms(run.percentile_ms(1.0)).removesuffix(" ms"),
            f"{_percentile(run.lags, 0.99) * 1000:.2f}",
            _cpu(run.server_cpu, run.window),
            _cpu(run.client_cpu, run.window),
            run.slow.text(),
            "[green]pass[/green]" if not failures else f"[red]fail: {short}[/red]",
        )
    return table


def _cpu(seconds: float | None, window: float) -> str:
    """CPU use over a run as a share of one core."""
    return "–" if seconds is None or window <= 0 else f"{seconds / window:.0%}"


def _mix(console: Console, run: RunResult) -> None:
    answered = sum(run.decisions.values())
    if not answered:
        return
    decisions = ", ".join(
        f"{name} {run.decisions[name] / answered:.1%}" for name in ("allow", "warn", "block")
    )
    hits = ", ".join(f"{rule} {n:,}" for rule, n in run.hits.most_common())
    console.print(f"verdicts of the target run: {decisions}; hits: {hits or 'none'}")


def _targets(
    console: Console, args: argparse.Namespace, runs: list[RunResult], steps: list[Step]
) -> None:
    conditions = args.rate == TARGET_RATE and args.seconds == TARGET_SECONDS
    cores = f"{os.cpu_count()} cores, load generator included"
    if runs:
        run = runs[0]
        met = run.percentile_ms(0.99) <= TARGET_P99_MS and run.errors == 0
        met = met and run.achieved >= run.rate * (1 - SHORTFALL)
        detail = (
            f"p99 {run.percentile_ms(0.99):.2f} ms, {run.errors:,} errors, "
            f"{run.achieved:,.0f}/s achieved, on {cores}"
        )
        if not conditions:
            detail += f"; measured at {args.rate:,.0f}/s over {args.seconds:g} s, not the target's"
        console.print(
            f"target p99 <= {TARGET_P99_MS:g} ms at {TARGET_RATE:,.0f} claims/s over "
            f"{TARGET_SECONDS:g} s with zero errors: {_met(met and conditions)} ({detail})"
        )
    console.print(
        f"target maximum sustainable rate >= {TARGET_MAX_RATE:,.0f} claims/s: "
        f"{_met(_best(steps, Step.failures) >= TARGET_MAX_RATE)}, judged at p99 <= "
        f"{TARGET_P99_MS:g} ms. {_maxima(args, steps)}"
    )


def _best(steps: list[Step], failures: Callable[[Step], list[str]]) -> float:
    """The highest rate that passed below the lowest that failed (0 when none passed): a
    lucky step above a failed one does not count."""
    failed = min((s.rate for s in steps if failures(s)), default=float("inf"))
    return max((s.rate for s in steps if not failures(s) and s.rate < failed), default=0.0)


def _maximum(
    args: argparse.Namespace, steps: list[Step], failures: Callable[[Step], list[str]]
) -> str:
    """The maximum rate of these steps under one reading (:meth:`Step.failures`: p99 <= 5 ms and
    every call answered; :meth:`Step.not_kept_up`: every call answered), and why the next
    step failed."""
    best = _best(steps, failures)
    above = [s for s in steps if failures(s) and s.rate > best]
    failed = min(above, key=lambda s: s.rate, default=None)
    if failed is not None:
        why = f"{failed.rate:,.0f}/s failed: {'; '.join(failures(failed))}"
    else:
        why = f"no step failed up to --max-rate {args.max_rate:,.0f}/s"
    best_text = f"{best:,.0f}/s" if best else f"none from {args.rate:,.0f}/s"
    return f"max {best_text}; {why}"


def _maxima(args: argparse.Namespace, steps: list[Step]) -> str:
    """Both readings' maxima, and how they were measured."""
    trials = (
        f"median of {args.trials} trials of {args.step_seconds:g} s a step"
        if args.trials > 1
        else f"one trial of {args.step_seconds:g} s a step"
    )
    return (
        f"p99 <= {TARGET_P99_MS:g} ms: {_maximum(args, steps, Step.failures)}. "
        f"Kept up with (every call answered in time, >= {1 - SHORTFALL:.0%} of the rate, any "
        f"p99): {_maximum(args, steps, Step.not_kept_up)}. ({trials}, on {os.cpu_count()} "
        "cores, load generator included)"
    )


def _met(met: bool) -> str:
    return "[green]met[/green]" if met else "[red]NOT met[/red]"


if __name__ == "__main__":
    raise SystemExit(main())
