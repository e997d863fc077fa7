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
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.schema import LABEL_COLUMNS, LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.access import SiteAccess
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
WRITES = ("settlements", "lines", "labels", "batches", "rejects", "vault")
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
    rejected_by_field: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def lines_read(self) -> int:
        return sum(f.read for f in self.files if f.file == "lines")


def ingest(
    access: SiteAccess,
    settlements: Path,
    lines: Path,
    labels: Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate, desensitize and store one batch of contract files at the node of ``access``.

    Every read and write goes through ``access`` (the policy decides, the audit log records).
    Arrow, DuckDB and the crypto release the GIL, so the work is spread over threads to use
    both cores of a small node: the lines are read and checked beside the settlements; the
    settlements are desensitized while the lines are inserted; the vault is written while the
    settlements are inserted, and the store commits only once the vault holds every identity
    of the batch.
    """
    started = time.perf_counter()
    step = progress or (lambda stage: None)
    home = access.home
    access.require_writes(WRITES)  # refuse before reading anything
    inputs = {"settlements": settlements, "lines": lines}
    if labels is not None:
        inputs["labels"] = labels
    kb = home.knowledge_base()
    with Store.open(home.store) as store, ThreadPoolExecutor(max_workers=4) as pool:
        digest_job = pool.submit(_content_sha256, list(inputs.values()))
        step("read")
        lines_job = pool.submit(_read_and_check_lines, access, lines, kb)
        read = access.read(
            "export.settlements", ["*"], lambda: read_contract_csv(settlements, SETTLEMENT_COLUMNS)
        )
        step("validate")
        stored_ids = access.read("settlements", ["settlement_id"], store.settlement_ids)
        s = validate_settlements(read, home.site_id, stored_ids)
        known = Known(
            s.accepted.column("settlement_id").combine_chunks(),
            read.column("settlement_id").combine_chunks(),
            stored_ids,
        )
        step("desensitize")
        desensitized = pool.submit(desensitize, s.accepted, home.secret("pseudonym"))
        digest = digest_job.result()
        earlier = access.read(
            "batches",
            ["batch_id", "content_sha256"],
            lambda: store.has_content(digest),
            rows=lambda found: int(found is not None),
        )
        if earlier is not None:
            lines_job.result()
            desensitized.result()
            return IngestReport(earlier, (), True, None, 0, time.perf_counter() - started)
        batch_id = digest[:16]
        # The store's reads come first: its connection then only writes.
        pending = lines_job.result()
        line_ids = pending.data.column("settlement_id")
        stored_lines = access.read(
            "lines", ["settlement_id", "line_no"], lambda: store.line_keys(line_ids)
        )
        labels_done = _labels(access, store, pool, known, labels)
        ln = finish_lines(pending, known, stored_lines)
        step("store")
        with store.batch(batch_id) as writer:
            access.write("lines", ln.accepted.num_rows, lambda: writer.lines(ln.accepted))
            clean = desensitized.result()
            vault = Vault(home.vault, home.secret("vault"))
            vault_job = pool.submit(
                access.write, "vault", len(clean.vault), lambda: vault.put(clean.vault)
            )
            access.write(
                "settlements",
                clean.settlements.num_rows,
                lambda: writer.settlements(clean.settlements),
            )
            lb = None if labels_done is None else labels_done.result()
            if lb is not None:
                access.write("labels", lb.accepted.num_rows, lambda: writer.labels(lb.accepted))
            results = [r for r in (s, ln, lb) if r is not None]
            rejects_path = access.write(
                "rejects",
                sum(len(r.rejects) for r in results),
                lambda: _write_rejects(home, batch_id, results),
            )
            record = _record(batch_id, digest, inputs, results)
            access.write("batches", 1, lambda: writer.record(record))
            new_identities = vault_job.result()  # the vault holds the batch before it commits
    reports = tuple(
        FileReport(name, r.rows_read, r.accepted.num_rows, len(r.rejects))
        for name, r in zip(inputs, results, strict=True)
    )
    by_field = Counter((r.file, r.field) for result in results for r in result.rejects)
    seconds = time.perf_counter() - started
    return IngestReport(
        batch_id, reports, False, rejects_path, new_identities, seconds, dict(by_field)
    )


def _read_and_check_lines(access: SiteAccess, path: Path, kb: KnowledgeBase) -> PendingLines:
    data = access.read("export.lines", ["*"], lambda: read_contract_csv(path, LINE_COLUMNS))
    return check_lines(data, access.home.site_id, kb)


def _labels(
    access: SiteAccess,
    store: Store,
    pool: ThreadPoolExecutor,
    known: Known,
    path: Path | None,
) -> Future[Validated] | None:
    """Start reading and checking the labels file, if there is one (after reading the store's
    labels here, on the store's thread)."""
    if path is None:
        return None
    labelled = access.read("labels", ["settlement_id"], store.labelled_ids)

    def check(file: Path) -> Validated:
        data = access.read("export.labels", ["*"], lambda: read_contract_csv(file, LABEL_COLUMNS))
        return validate_labels(data, access.home.site_id, known, labelled)

    return pool.submit(check, path)


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
