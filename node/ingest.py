"""Ingest of one batch of contract files: validate → desensitize → vault → store.

Every row read is accounted for: accepted into the store, or rejected into
``HOME/rejects/<batch>.jsonl`` with its file, row number, field and reason. A batch is written
in one store transaction; the same content ingested twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.schema import LABEL_COLUMNS, LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.csvread import read_contract_csv
from fedrisk.node.desensitize import desensitize
from fedrisk.node.home import NodeHome
from fedrisk.node.store import BatchRecord, Store
from fedrisk.node.validate import (
    Known,
    PendingLines,
    Reject,
    Validated,
    check_lines,
    finish_lines,
    validate_labels,
    validate_settlements,
)
from fedrisk.node.vault import Vault

STAGES = ("read", "validate", "desensitize", "store")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FileReport:
    """Counts of one input file; ``accepted + rejected == read`` always."""

    file: str
    read: int
    accepted: int
    rejected: int


@dataclass(frozen=True)
class IngestReport:
    """What one ``ingest`` call did."""

    batch_id: str
    files: tuple[FileReport, ...]
    already_ingested: bool
    rejects_path: Path | None
    new_identities: int
    seconds: float

    @property
    def lines_read(self) -> int:
        return sum(f.read for f in self.files if f.file == "lines")


def ingest(
    home: NodeHome,
    settlements: Path,
    lines: Path,
    labels: Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate, desensitize and store one batch of contract files at ``home``.

    Settlements and fee lines are read and checked in two threads (Arrow and DuckDB release
    the GIL, so a 2-core node uses both cores); the vault is written while the lines are
    checked and the store inserts, and the store commits only once the vault holds every
    identity of the batch.
    """
    started = time.perf_counter()
    step = progress or (lambda stage: None)
    inputs = {"settlements": settlements, "lines": lines}
    if labels is not None:
        inputs["labels"] = labels
    kb = home.knowledge_base()
    with Store.open(home.store) as store, ThreadPoolExecutor(max_workers=3) as pool:
        digest_job = pool.submit(_content_sha256, list(inputs.values()))
        step("read")
        lines_job = pool.submit(_read_and_check_lines, lines, home.site_id, kb)
        read = read_contract_csv(settlements, SETTLEMENT_COLUMNS)
        step("validate")
        stored_ids = store.settlement_ids()
        s = validate_settlements(read, home.site_id, stored_ids)
        step("desensitize")
        clean = desensitize(s.accepted, home.secret("pseudonym"))
        # Idempotent, so it may start before the batch is known to be new.
        vault_job = pool.submit(Vault(home.vault, home.secret("vault")).put, clean.vault)
        digest = digest_job.result()
        earlier = store.has_content(digest)
        if earlier is not None:
            lines_job.result()
            return IngestReport(earlier, (), True, None, 0, time.perf_counter() - started)
        batch_id = digest[:16]
        step("store")
        with store.batch(batch_id) as writer:
            writer.settlements(clean.settlements)  # while the other thread checks the lines
            known = Known(
                s.accepted.column("settlement_id").combine_chunks(),
                read.column("settlement_id").combine_chunks(),
                stored_ids,
            )
            pending = lines_job.result()
            line_ids = pending.data.column("settlement_id")
            ln = finish_lines(pending, known, store.line_keys(line_ids))
            writer.lines(ln.accepted)
            lb = _labels(store, home.site_id, known, labels)
            if lb is not None:
                writer.labels(lb.accepted)
            results = [r for r in (s, ln, lb) if r is not None]
            rejects_path = _write_rejects(home, batch_id, results)
            writer.record(_record(batch_id, digest, inputs, results))
            new_identities = vault_job.result()  # the vault holds the batch before it commits
    reports = tuple(
        FileReport(name, r.rows_read, r.accepted.num_rows, len(r.rejects))
        for name, r in zip(inputs, results, strict=True)
    )
    return IngestReport(
        batch_id, reports, False, rejects_path, new_identities, time.perf_counter() - started
    )


def _read_and_check_lines(path: Path, site_id: str, kb: KnowledgeBase) -> PendingLines:
    return check_lines(read_contract_csv(path, LINE_COLUMNS), site_id, kb)


def _labels(store: Store, site_id: str, known: Known, path: Path | None) -> Validated | None:
    if path is None:
        return None
    data = read_contract_csv(path, LABEL_COLUMNS)
    return validate_labels(data, site_id, known, store.labelled_ids())


def _record(
    batch_id: str, digest: str, inputs: dict[str, Path], results: list[Validated]
) -> BatchRecord:
    return BatchRecord(
        batch_id=batch_id,
        content_sha256=digest,
        files=json.dumps({name: str(path) for name, path in inputs.items()}),
        rows_read=sum(r.rows_read for r in results),
        rows_accepted=sum(r.accepted.num_rows for r in results),
        rows_rejected=sum(len(r.rejects) for r in results),
    )


def read_rejects(path: Path) -> list[Reject]:
    """The rejects of one batch file, as written by :func:`ingest`."""
    with path.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return [Reject(**{**r, "other_fields": tuple(r["other_fields"])}) for r in records]


def _content_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        file_digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(path.name.encode() + b"\0" + file_digest.digest())
    return digest.hexdigest()


def _write_rejects(home: NodeHome, batch_id: str, results: list[Validated]) -> Path:
    """Write the batch's rejects before the store commit (rename is atomic).

    Written first so that a crash after the commit cannot leave a stored batch without its
    rejects; a crash before the commit leaves a rejects file that a retry rewrites identically.
    """
    final = home.rejects / f"{batch_id}.jsonl"
    temporary = final.with_suffix(".jsonl.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for result in results:
            for reject in result.rejects:
                handle.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
    os.replace(temporary, final)
    return final
