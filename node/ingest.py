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
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fedrisk.models.schema import LABEL_COLUMNS, LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.csvread import read_contract_csv
from fedrisk.node.desensitize import desensitize
from fedrisk.node.home import NodeHome
from fedrisk.node.store import BatchRecord, Store
from fedrisk.node.validate import (
    Known,
    Reject,
    Validated,
    validate_labels,
    validate_lines,
    validate_settlements,
)
from fedrisk.node.vault import Vault

STAGES = ("read", "validate", "desensitize", "vault", "store")
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
    """Validate, desensitize and store one batch of contract files at ``home``."""
    started = time.perf_counter()
    step = progress or (lambda stage: None)
    inputs = [("settlements", settlements), ("lines", lines)]
    if labels is not None:
        inputs.append(("labels", labels))
    digest = _content_sha256([path for _, path in inputs])
    batch_id = digest[:16]
    with Store.open(home.store) as store:
        earlier = store.has_content(digest)
        if earlier is not None:
            return IngestReport(earlier, (), True, None, 0, time.perf_counter() - started)
        step("read")
        read = {
            "settlements": read_contract_csv(settlements, SETTLEMENT_COLUMNS),
            "lines": read_contract_csv(lines, LINE_COLUMNS),
        }
        if labels is not None:
            read["labels"] = read_contract_csv(labels, LABEL_COLUMNS)
        step("validate")
        stored_ids = store.settlement_ids()
        s = validate_settlements(read["settlements"], home.site_id, stored_ids)
        accepted_ids = s.accepted.column("settlement_id").combine_chunks()
        all_ids = read["settlements"].column("settlement_id").combine_chunks()
        known = Known(accepted_ids, all_ids, stored_ids)
        line_ids = read["lines"].column("settlement_id").combine_chunks()
        kb = home.knowledge_base()
        ln = validate_lines(read["lines"], home.site_id, kb, known, store.line_keys(line_ids))
        lb = None
        if "labels" in read:
            lb = validate_labels(read["labels"], home.site_id, known, store.labelled_ids())
        results = [r for r in (s, ln, lb) if r is not None]
        step("desensitize")
        clean = desensitize(s.accepted, home.secret("pseudonym"))
        rejects_path = _write_rejects(home, batch_id, results)
        step("vault")
        new_identities = Vault(home.vault, home.secret("vault")).put(clean.vault)
        step("store")
        record = BatchRecord(
            batch_id=batch_id,
            content_sha256=digest,
            files=json.dumps({name: str(path) for name, path in inputs}),
            rows_read=sum(r.rows_read for r in results),
            rows_accepted=sum(r.accepted.num_rows for r in results),
            rows_rejected=sum(len(r.rejects) for r in results),
        )
        labels_table = lb.accepted if lb is not None else _empty(LABEL_COLUMNS)
        store.write_batch(record, clean.settlements, ln.accepted, labels_table)
    reports = tuple(
        FileReport(name, r.rows_read, r.accepted.num_rows, len(r.rejects))
        for name, r in zip(("settlements", "lines", "labels"), results, strict=False)
    )
    return IngestReport(
        batch_id, reports, False, rejects_path, new_identities, time.perf_counter() - started
    )


def read_rejects(path: Path) -> list[Reject]:
    """The rejects of one batch file, as written by :func:`ingest`."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            d = json.loads(line)
            out.append(
                Reject(
                    d["file"],
                    d["row"],
                    d["settlement_id"],
                    d["field"],
                    d["reason"],
                    tuple(d["other_fields"]),
                )
            )
    return out


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


def _empty(columns: tuple[str, ...]) -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in columns})
