"""Audit log throughput: batched and one-by-one appends, and ``fedrisk audit verify``.

    python bench/audit.py [--entries 1000000] [--batch 10000] [--single 2000] [--repeats 3]
                          [--workdir DIR] [--quick]

For every repeat, on fresh logs in a temporary folder (under ``--workdir`` if given):

- appends ``--entries`` records in commits of ``--batch`` with every commit fsynced (log and
  heads), then the same with flush only (a quarter of the entries), to show the fsync cost;
- appends ``--single`` records one commit each (each: fsync of the log, an Ed25519 signature,
  fsync of the heads file), fsynced and flush only;
- the baseline, in the same process (the machine is noisy, so only ratios are compared): the
  same canonical JSON lines written to a plain file with one fsync per batch, no hashing, no
  Merkle tree, no signature. The batched rate is reported as a ratio of it, median of the
  per-repeat ratios.

Then ``verify_log`` runs ``--repeats`` times over the last batched, fsynced log (just written,
so read from the page cache), which must be intact with every entry; otherwise the run exits 1.
Prints one table and whether the targets, >= 50,000 appends/s batched and verify of 1,000,000
entries <= 10 s, are met; a missed target does not change the exit code (0).

``--quick`` (20,000 entries, 200 one by one, 1 repeat) is a smoke test of the script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import cryptography
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import machine_line
from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity
from fedrisk.models.rules.engine import READS
from fedrisk.node.auditlog import (
    FIRST_PREV,
    HEADS_FILE,
    LOG_FILE,
    AuditLog,
    AuditRecord,
    Durability,
)
from fedrisk.node.auditverify import VerifyReport, verify_log
from fedrisk.node.datasets import DATASETS

TARGET_APPENDS_PER_SECOND = 50_000
TARGET_VERIFY_SECONDS = 10.0
TARGET_VERIFY_ENTRIES = 1_000_000
DEFAULTS = {"entries": 1_000_000, "batch": 10_000, "single": 2_000, "repeats": 3}
QUICK = {"entries": 20_000, "single": 200, "repeats": 1}
NODE = "site-a"
POLICY = "fbfb38d2a315e715"
SETTINGS = {Durability.FSYNC: "fsync per commit", Durability.FLUSH: "flush only"}

# What the access gate logs, in roughly the proportions a working node produces: mostly
# screening reads of the store, some ingest writes, analyst reads, and the odd denial.
LINES = READS["lines"]
SETTLEMENTS = READS["settlements"]
FLAGS = DATASETS["flags"]
DENIED = "field patient_pseudonym not granted to role analyst"
Template = tuple[
    str, str, str, Literal["read", "write"], str, tuple[str, ...], Literal["allowed", "denied"], str
]
# actor, role, purpose, action, dataset, fields, decision, reason
TEMPLATES: tuple[Template, ...] = (
    ("operator-a", "operator", "screening", "read", "lines", LINES, "allowed", ""),
    ("operator-a", "operator", "screening", "read", "settlements", SETTLEMENTS, "allowed", ""),
    ("operator-a", "operator", "screening", "write", "flags", FLAGS, "allowed", ""),
    ("operator-b", "operator", "ingest", "write", "lines", LINES, "allowed", ""),
    ("analyst-1", "analyst", "review", "read", "flags", FLAGS, "allowed", ""),
    ("analyst-1", "analyst", "review", "read", "settlements", SETTLEMENTS, "denied", DENIED),
)


class CheckError(Exception):
    """A log did not come out as written: the timings mean nothing."""


@dataclass
class Measurement:
    """Seconds of every repeat of one row of the table."""

    name: str
    durability: str
    entries: int
    commits: int
    seconds: list[float] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.entries / s for s in self.seconds if s > 0]


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    machine_line(console, f"cryptography {cryptography.__version__}, {ssl.OPENSSL_VERSION}")
    identity = Identity.generate(NODE)
    pool = records(args.batch)
    with tempfile.TemporaryDirectory(prefix="fedrisk-bench-audit-", dir=args.workdir) as tmp:
        work = Path(tmp)
        console.print(f"workdir: {work} ({_filesystem(work)})")
        try:
            rows, ratios, last_log = _appends(console, args, identity, pool, work)
            verify, size = _verify(console, args, identity, last_log)
        except CheckError as exc:
            console.print(f"[red]check failed: {exc}[/red]")
            return 1
    _report(console, args, rows, ratios, verify, size)
    return 0


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entries", type=int, default=None, help=f"batched (default {DEFAULTS['entries']:,})"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help=f"entries a commit (default {DEFAULTS['batch']:,})"
    )
    parser.add_argument(
        "--single", type=int, default=None, help=f"one-by-one (default {DEFAULTS['single']:,})"
    )
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the temporary logs go (default: /tmp)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['entries']:,} entries, {QUICK['single']} single, 1 repeat",
    )
    args = parser.parse_args(argv)
    chosen = {**DEFAULTS, **QUICK} if args.quick else DEFAULTS
    for name, default in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.workdir is not None and not args.workdir.is_dir():
        parser.error(f"--workdir {args.workdir} is not a folder")
    return args


def records(count: int) -> list[AuditRecord]:
    """``count`` realistic records: the templates in turn, with varying row counts."""
    pool = []
    for i in range(count):
        template = TEMPLATES[i % len(TEMPLATES)]
        actor, role, purpose, action, dataset, fields, decision, reason = template
        rows = 1_000 + (i * 7_919) % 600_000 if decision == "allowed" else None
        pool.append(
            AuditRecord(
                actor, role, purpose, action, dataset, fields, rows, decision, reason, POLICY
            )
        )
    return pool


def _filesystem(path: Path) -> str:
    """The type and device of the file system ``path`` is on (fsync costs depend on it)."""
    best = ("", "unknown file system", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                device, mount, kind = line.split()[:3]
                inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
                if inside and len(mount) >= len(best[0]):
                    best = (mount, kind, device)
    except OSError:
        pass
    return f"{best[1]} on {best[2]}" if best[2] else best[1]


def _appends(
    console: Console,
    args: argparse.Namespace,
    identity: Identity,
    pool: list[AuditRecord],
    work: Path,
) -> tuple[list[Measurement], list[float], Path]:
    """Every append row and the baseline, per repeat; the per-repeat ratios and the last log."""
    n, batch, single = args.entries, args.batch, args.single
    quarter = max(n // 4, 1)
    fsync = Measurement("batched", SETTINGS[Durability.FSYNC], n, -(-n // batch))
    flush = Measurement("batched", SETTINGS[Durability.FLUSH], quarter, -(-quarter // batch))
    base = Measurement("baseline", "fsync per batch", n, fsync.commits)
    one_fsync = Measurement("one by one", SETTINGS[Durability.FSYNC], single, single)
    one_flush = Measurement("one by one", SETTINGS[Durability.FLUSH], single, single)
    ratios: list[float] = []
    last_log = work / "fsync-0"
    for r in range(args.repeats):
        label = f"repeat {r + 1}/{args.repeats}"
        # Alternate which of the pair goes first, so slow drift of the machine hits both.
        pair = [("log", fsync), ("baseline", base)]
        for what, row in pair if r % 2 == 0 else pair[::-1]:
            with console.status(f"{label}: {row.name}, {row.durability} ({row.entries:,})"):
                if what == "log":
                    if r > 0:
                        shutil.rmtree(last_log)
                    last_log = work / f"fsync-{r}"
                    row.seconds.append(batched(last_log, identity, Durability.FSYNC, n, pool))
                else:
                    path = work / f"baseline-{r}.jsonl"
                    row.seconds.append(baseline(path, n, pool))
                    path.unlink()
            _progress(console, label, row)
        ratios.append(base.seconds[-1] / fsync.seconds[-1])
        phases = (
            (flush, batched, Durability.FLUSH),
            (one_fsync, one_by_one, Durability.FSYNC),
            (one_flush, one_by_one, Durability.FLUSH),
        )
        for k, (row, run, durability) in enumerate(phases):
            folder = work / f"log-{r}-{k}"
            with console.status(f"{label}: {row.name}, {row.durability} ({row.entries:,})"):
                row.seconds.append(run(folder, identity, durability, row.entries, pool))
                if run is one_by_one:  # cheap to verify, so check it
                    _check(verify_log(folder, identity.public), row.entries, row.commits + 1)
                shutil.rmtree(folder)
            _progress(console, label, row)
    return [fsync, flush, one_fsync, one_flush, base], ratios, last_log


def _progress(console: Console, label: str, row: Measurement) -> None:
    seconds = row.seconds[-1]
    console.print(
        f"{label}: {row.name}, {row.durability}: {row.entries:,} entries in {seconds:.2f} s "
        f"({row.entries / seconds:,.0f}/s)"
    )


def batched(
    folder: Path, identity: Identity, durability: Durability, entries: int, pool: list[AuditRecord]
) -> float:
    """Seconds to append ``entries`` to a fresh log in commits of ``len(pool)``."""
    AuditLog.create(folder, NODE, identity)
    log = AuditLog(folder, NODE, identity, durability)
    done = 0
    started = time.perf_counter()
    while done < entries:
        count = min(len(pool), entries - done)
        head = log.append(pool if count == len(pool) else pool[:count])
        done += count
    seconds = time.perf_counter() - started
    if head.size != entries:
        raise CheckError(f"{folder}: the last head has {head.size:,} entries, not {entries:,}")
    return seconds


def one_by_one(
    folder: Path, identity: Identity, durability: Durability, entries: int, pool: list[AuditRecord]
) -> float:
    """Seconds to append ``entries`` to a fresh log, one commit each."""
    AuditLog.create(folder, NODE, identity)
    log = AuditLog(folder, NODE, identity, durability)
    singles = [[pool[i % len(pool)]] for i in range(entries)]
    started = time.perf_counter()
    for record in singles:
        head = log.append(record)
    seconds = time.perf_counter() - started
    if head.size != entries:
        raise CheckError(f"{folder}: the last head has {head.size:,} entries, not {entries:,}")
    return seconds


def baseline(path: Path, entries: int, pool: Sequence[AuditRecord]) -> float:
    """Seconds to write the same entries' canonical JSON lines, one fsync per batch of the pool.

    Same bytes per line as the log (``prev`` is a constant of the same length): what is left
    of the log's cost is the hashing, the Merkle edge, the signed heads and their file.
    """
    seq = 0
    started = time.perf_counter()
    with path.open("ab") as handle:
        while seq < entries:
            count = min(len(pool), entries - seq)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            lines = [
                canonical_json(record.entry(seq + j, FIRST_PREV, now, NODE))
                for j, record in enumerate(pool[:count])
            ]
            handle.write(b"".join(line + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
            seq += count
    return time.perf_counter() - started


def _verify(
    console: Console, args: argparse.Namespace, identity: Identity, folder: Path
) -> tuple[Measurement, tuple[int, int]]:
    """``verify_log`` over the last batched log, every repeat; the log and heads file sizes."""
    n = args.entries
    commits = -(-n // args.batch)
    row = Measurement("verify_log", "-", n, commits + 1)
    for r in range(args.repeats):
        with console.status(f"verify {r + 1}/{args.repeats}: {n:,} entries"):
            started = time.perf_counter()
            report = verify_log(folder, identity.public)
            row.seconds.append(time.perf_counter() - started)
        _check(report, n, commits + 1)
        console.print(
            f"verify {r + 1}/{args.repeats}: {report.entries:,} entries, {report.heads:,} heads, "
            f"intact, {row.seconds[-1]:.2f} s ({n / row.seconds[-1]:,.0f}/s)"
        )
    size = ((folder / LOG_FILE).stat().st_size, (folder / HEADS_FILE).stat().st_size)
    return row, size


def _check(report: VerifyReport, entries: int, heads: int) -> None:
    if not report.intact:
        problem = report.problem.message if report.problem is not None else "?"
        raise CheckError(f"verify_log finds the log not intact: {problem}")
    if report.entries != entries or report.heads != heads:
        raise CheckError(
            f"verify_log counts {report.entries:,} entries and {report.heads:,} heads, "
            f"expected {entries:,} and {heads:,}"
        )


def _report(
    console: Console,
    args: argparse.Namespace,
    rows: list[Measurement],
    ratios: list[float],
    verify: Measurement,
    size: tuple[int, int],
) -> None:
    title = f"audit log throughput (median of {args.repeats}; batched: {args.batch:,} a commit)"
    table = Table(title=title)
    columns = ("measurement", "durability", "entries", "commits", "median s", "entries/s")
    for name in (*columns, "min–max entries/s", "vs baseline"):
        table.add_column(name, justify="left" if name in columns[:2] else "right")
    base = rows[-1]
    for row in rows:
        if row is base:
            table.add_section()
            vs = "1.00x"
        elif row is rows[0]:
            vs = f"{statistics.median(ratios):.2f}x"
        else:
            vs = "-"
        _row(table, row, vs)
    table.add_section()
    _row(table, verify, "-")
    console.print(table)
    log_bytes, head_bytes = size
    console.print(
        f"log on disk: {LOG_FILE} {log_bytes:,} bytes ({log_bytes / verify.entries:,.0f} "
        f"bytes/entry), {HEADS_FILE} {head_bytes:,} bytes ({verify.commits:,} heads)"
    )
    console.print(
        "baseline: the same canonical JSON lines to a plain file, one fsync per batch, with no "
        "hash, tree or signature\nvs baseline: the log's rate over the baseline's, median of the "
        "per-repeat ratios\nverify_log: reads the log just written (page cache); its commits are "
        "the signed heads it checks, one a commit and the empty one"
    )
    _targets(console, args, rows[0], verify)


def _row(table: Table, row: Measurement, vs: str) -> None:
    rates = row.rates()
    table.add_row(
        row.name,
        row.durability,
        f"{row.entries:,}",
        f"{row.commits:,}",
        f"{statistics.median(row.seconds):.2f}",
        f"{row.entries / statistics.median(row.seconds):,.0f}",
        f"{min(rates):,.0f}–{max(rates):,.0f}",
        vs,
    )


def _targets(
    console: Console, args: argparse.Namespace, appends: Measurement, verify: Measurement
) -> None:
    cores = os.cpu_count()
    rate = appends.entries / statistics.median(appends.seconds)
    met = rate >= TARGET_APPENDS_PER_SECOND
    console.print(f"targets, on {cores} cores:")
    console.print(
        f"  batched appends >= {TARGET_APPENDS_PER_SECOND:,}/s ({args.batch:,} a commit, fsync "
        f"per commit): {_verdict(met)} ({rate:,.0f}/s)"
    )
    seconds = statistics.median(verify.seconds)
    scaled = seconds * TARGET_VERIFY_ENTRIES / verify.entries
    how = f"{seconds:.2f} s"
    if verify.entries != TARGET_VERIFY_ENTRIES:
        how = f"{scaled:.2f} s extrapolated linearly from {how} for {verify.entries:,} entries"
    console.print(
        f"  verify of {TARGET_VERIFY_ENTRIES:,} entries <= {TARGET_VERIFY_SECONDS:.0f} s: "
        f"{_verdict(scaled <= TARGET_VERIFY_SECONDS)} ({how})"
    )


def _verdict(met: bool) -> str:
    return "[green]met[/green]" if met else "[red]NOT met[/red]"


if __name__ == "__main__":
    raise SystemExit(main())
