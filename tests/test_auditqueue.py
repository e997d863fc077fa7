"""node/auditqueue.py: every submitted entry reaches the log, in few commits, and flush waits."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from fedrisk.crypto.identity import Identity
from fedrisk.node.auditlog import HEADS_FILE, LOG_FILE, AuditLog, AuditRecord, Durability
from fedrisk.node.auditqueue import AuditQueue
from fedrisk.node.auditverify import verify_log

KEY = Identity.generate("H1")


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        actor="his",
        role="service",
        purpose="precheck",
        action="read",
        dataset="claims",
        fields=("*",),
        rows=i,
        decision="allowed",
        reason="",
        policy="fbfb38d2a315e715",
    )


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_entries_from_many_threads_all_land_in_few_commits(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    queue = AuditQueue(AuditLog.create(folder, "H1", KEY, Durability.FLUSH), interval=0.05)

    def submit(start: int) -> None:
        for i in range(start, start + 500):
            queue.submit(_record(i))

    threads = [threading.Thread(target=submit, args=(k * 500,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.flush()
    assert _lines(folder / LOG_FILE) == 2_000
    assert sorted(r["rows"] for r in _entries(folder)) == list(range(2_000))
    assert _lines(folder / HEADS_FILE) <= 20  # grouped, not a commit per entry
    queue.close()
    report = verify_log(folder, KEY.public)
    assert report.intact and report.entries == 2_000


def test_flush_waits_for_earlier_entries_and_close_writes_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    queue = AuditQueue(AuditLog.create(folder, "H1", KEY, Durability.FLUSH), interval=0.2)
    queue.submit(_record(1))
    started = time.monotonic()
    queue.flush()
    assert _lines(folder / LOG_FILE) == 1
    assert time.monotonic() - started < 5
    queue.submit(_record(2))
    queue.close()  # without a flush: close writes what is queued
    assert _lines(folder / LOG_FILE) == 2


def _entries(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]
