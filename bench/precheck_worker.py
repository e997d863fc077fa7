"""PreCheck's check worker: CPU per claim in this process (the baseline) and over its real pipe.

    python bench/precheck_worker.py [--claims 20000] [--repeats 5] [--batches 1,8,64]
        [--settlements 20000] [--seed 1] [--data DIR] [--model]

Setup (not timed) as ``bench/precheck_load.py``: one generated hospital (or ``--data``),
ingested into a node home, its settlements replayed as claims. Then, for ``--repeats`` rounds:

- **in process** (baseline): ``answer_claim`` on each claim's bytes, with an audit queue like the
  worker's; the CPU this process used (the audit writer thread included), per claim;
- **over the pipe**, for each group size B of ``--batches``: a real worker
  (``python -m fedrisk.node.precheckworker``, as the server starts it) gets B claims in one
  write, and the next B once their answers are back (closed loop); the worker's user and system
  CPU from /proc, per claim, and how long each answer took to come back from its group's write
  (p50 and p99 over the round). A group of 64 is what the worker reads after a pause of ~30 ms
  at 2,000/s: its answers' waits show how fast such a backlog comes back.

Medians of the rounds, and each row's ratio to the in-process check. Why this bench beside
the load bench: the load bench's p99 moves with whatever else runs on the host, while CPU per
claim moves much less, so a change to the worker or the check is judged here first. Linux only
(it reads /proc). Exit code 0, or 2 when there was nothing to replay or the worker did not
start.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from google.protobuf import __version__ as protobuf_version
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import machine_line
from bench.precheck_load import replay_setup
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.auditqueue import AuditQueue
from fedrisk.node.home import open_home
from fedrisk.node.precheck import answer_claim, load_checker
from fedrisk.node.precheckwire import START, FrameReader, WorkerStart, claim_frame, frame

PRINCIPAL = Principal("bench", "precheck")
SETTLE_SECONDS = 0.2  # after a round: the worker's audit writer commits what it holds


@dataclass(frozen=True)
class Cpu:
    """CPU seconds a round used, per claim, and (over the pipe) each answer's wait in seconds:
    from its group's write to its arrival."""

    user: float
    system: float
    waits: tuple[float, ...] = ()

    @property
    def total(self) -> float:
        return self.user + self.system


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    console = Console(width=120)
    machine_line(console, f"protobuf {protobuf_version}")
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-") as tmp:
        replayed = replay_setup(console, args, Path(tmp))
        if replayed is None:
            return 2
        home = replayed[0]
        claims = [claim.request for claim in replayed[1][: args.claims]]
        rows: dict[str, list[Cpu]] = {"in process": []}
        for _ in range(args.repeats):
            rows["in process"].append(_in_process(home.root, claims))
            for batch in args.batches:
                measured = _over_pipe(home.root, claims, batch)
                if measured is None:
                    console.print("[red]the check worker did not start[/red]")
                    return 2
                rows.setdefault(f"worker, {batch} a write", []).append(measured)
        console.print(_table(rows, len(claims), args.repeats))
    return 0


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=20_000, help="checked per round and row")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument(
        "--batches", default="1,8,64", help="claims per write to the worker, comma-separated"
    )
    parser.add_argument("--settlements", type=int, default=20_000, help="generated, one site")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="existing exports (first site)")
    parser.add_argument(
        "--model", action="store_true", help="train and activate a model: every claim is scored"
    )
    args = parser.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: whole numbers joined by commas, not {args.batches!r}")
    if args.repeats < 1 or args.claims < 1 or min(args.batches) < 1:
        parser.error("--claims, --repeats and every batch: at least 1")
    args.sites = 1  # what bench.inputs.generate reads
    return args


def _in_process(home: Path, claims: list[bytes]) -> Cpu:
    """The check as the worker runs it, without the pipe."""
    checker = load_checker(SiteAccess.open(open_home(home), PRINCIPAL, "precheck"))
    audit = AuditQueue(checker.access.log)
    try:
        before = _own_cpu()
        for claim in claims:
            answer_claim(checker, audit, claim)
        audit.flush()
        after = _own_cpu()
    finally:
        audit.close()
    return _per_claim(before, after, len(claims))


def _over_pipe(home: Path, claims: list[bytes], batch: int) -> Cpu | None:
    """A real worker, ``batch`` claims a write; None when it did not start."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        command = [sys.executable, "-m", "fedrisk.node.precheckworker", str(theirs.fileno())]
        worker = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        reader = FrameReader()
        ours.sendall(frame(START, WorkerStart(home, PRINCIPAL).encode()))
        if _answers(ours, reader, 1)[0][0][0] != 0:
            worker.kill()
            worker.wait()
            return None
        before = _worker_cpu(worker.pid)
        waits: list[float] = []
        for at in range(0, len(claims), batch):
            group = claims[at : at + batch]
            sent = time.perf_counter()
            ours.sendall(b"".join(claim_frame(claim, None) for claim in group))
            waits += [arrived - sent for _, arrived in _answers(ours, reader, len(group))]
        time.sleep(SETTLE_SECONDS)
        after = _worker_cpu(worker.pid)
    worker.wait()
    return replace(_per_claim(before, after, len(claims)), waits=tuple(waits))


def _answers(
    link: socket.socket, reader: FrameReader, count: int
) -> list[tuple[tuple[int, bytes], float]]:
    """``count`` answers, each with the time (``perf_counter``) its bytes arrived."""
    got: list[tuple[tuple[int, bytes], float]] = []
    while len(got) < count:
        data = link.recv(1 << 16)
        if not data:
            raise RuntimeError("the worker closed its pipe")
        arrived = time.perf_counter()
        got += [(one, arrived) for one in reader.feed(data)]
    return got


def _own_cpu() -> Cpu:
    """User and system CPU seconds of this process so far, every thread."""
    times = os.times()
    return Cpu(times.user, times.system)


def _worker_cpu(pid: int) -> Cpu:
    """User and system CPU seconds of a process so far, every thread (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return Cpu(int(fields[11]) / tick, int(fields[12]) / tick)


def _per_claim(before: Cpu, after: Cpu, count: int) -> Cpu:
    return Cpu((after.user - before.user) / count, (after.system - before.system) / count)


def _table(rows: dict[str, list[Cpu]], claims: int, repeats: int) -> Table:
    table = Table(
        title=f"CPU per claim: {claims:,} claims, median of {repeats} rounds",
        caption="CPU in µs; ratio: total against the in-process check; answer waits in ms, "
        "from the group's write",
    )
    columns = ("", "total", "user", "system", "ratio", "answer p50", "answer p99")
    for column in columns:
        table.add_column(column, justify="left" if column == "" else "right")
    baseline = statistics.median(cpu.total for cpu in rows["in process"])
    for name, rounds in rows.items():
        total = statistics.median(cpu.total for cpu in rounds)
        table.add_row(
            name,
            f"{total * 1e6:.0f}",
            f"{statistics.median(cpu.user for cpu in rounds) * 1e6:.0f}",
            f"{statistics.median(cpu.system for cpu in rounds) * 1e6:.0f}",
            f"{total / baseline:.2f}x",
            _wait(rounds, 0.50),
            _wait(rounds, 0.99),
        )
    return table


def _wait(rounds: list[Cpu], q: float) -> str:
    """The median over the rounds of each round's ``q`` quantile of the answer waits, in ms."""
    if not rounds[0].waits:
        return "–"
    quantiles = [
        sorted(cpu.waits)[min(len(cpu.waits) - 1, int(q * len(cpu.waits)))] for cpu in rounds
    ]
    return f"{statistics.median(quantiles) * 1e3:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
