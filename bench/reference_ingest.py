"""A plain per-row validator of contract-v1 files: the baseline for ``bench/ingest.py``.

It implements the checks of docs/validation.md straight from the document, one row at a time
with the ``csv`` module (``csv.DictReader``, ``datetime.strptime``, ``re``, ``decimal``), and
shares no code with ``fedrisk.node.validate`` / ``checks`` / ``csvread``: the agreement test
(tests/test_validation_agreement.py) compares the two.

It stores nothing, but pays the desensitization a node pays for every accepted settlement
(HMAC-SHA256 pseudonyms of patient_id, doctor_id and pharmacist_id under a per-run key, and the
age at admission), so that timing it against ``fedrisk node ingest`` is fair.

The store is taken to be empty (a fresh node home): no ``already ingested`` rejects.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.schema import (
    LABEL_COLUMNS,
    LINE_COLUMNS,
    MODEL_VIOLATION,
    RULE_IDS,
    SETTLEMENT_COLUMNS,
    UNKNOWN_DOCTOR,
)

# Formats, from the wording of docs/validation.md (fullmatch: nothing before or after).
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
NATIONAL_ID = re.compile(r"[0-9]{17}[0-9X]")
ICD10 = r"[A-Z][0-9]{2}(?:\.[0-9A-Za-z]{1,4})?"  # A00, E11.900, I10.x00
DIAGNOSIS_LIST = re.compile(rf"{ICD10}(?:\|{ICD10})*")
MONEY = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")  # <= 12 digits, <= 2 decimals (so >= 0)
QUANTITY = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,3})?")  # <= 9 digits, <= 3 decimals
INTEGER = re.compile(r"[0-9]{1,9}")
TRACE_CODE = re.compile(r"[0-9]{20}")
TOLERANCE = Decimal("0.01")

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

Row = dict[str, str]


@dataclass(frozen=True)
class FileCounts:
    """Rows of one file; ``accepted + rejected == read``."""

    read: int
    accepted: int
    rejected: int


@dataclass
class ReferenceResult:
    """Counts per file (``settlements``, ``lines``, ``labels``) and the rejects.

    A reject is ``(file name, row, settlement_id, field)`` with ``row`` counting the header as
    row 1 and ``field`` the first failing column (``row`` for a wrong number of fields).
    """

    counts: dict[str, FileCounts] = field(default_factory=dict)
    rejects: list[tuple[str, int, str, str]] = field(default_factory=list)
    pseudonyms: int = 0  # HMACs computed (desensitization cost paid)

    @property
    def lines_read(self) -> int:
        return self.counts["lines"].read if "lines" in self.counts else 0


class MissingColumnError(ValueError):
    """A contract column is missing from a file's header: the whole file is refused."""


def validate_files(
    settlements: Path,
    lines: Path,
    labels: Path | None,
    site_id: str,
    kb: KnowledgeBase,
) -> ReferenceResult:
    """Validate one batch row by row, as docs/validation.md describes it."""
    result = ReferenceResult()
    key = os.urandom(32)  # per-run pseudonym key
    accepted_ids: set[str] = set()

    def check_settlement(row: Row, seen: set[str]) -> str | None:
        return _settlement_failure(row, site_id, seen)

    def on_settlement(row: Row) -> None:
        accepted_ids.add(row["settlement_id"])
        result.pseudonyms += _desensitize(row, key)

    _run_file(
        result, "settlements", settlements, SETTLEMENT_COLUMNS, check_settlement, on_settlement
    )
    drugs, services = frozenset(kb.drugs), frozenset(kb.services)

    def check_line(row: Row, seen: set[str]) -> str | None:
        return _line_failure(row, site_id, accepted_ids, seen, drugs, services)

    _run_file(result, "lines", lines, LINE_COLUMNS, check_line)
    if labels is not None:

        def check_label(row: Row, seen: set[str]) -> str | None:
            return _label_failure(row, site_id, accepted_ids, seen)

        _run_file(result, "labels", labels, LABEL_COLUMNS, check_label)
    return result


# --- files ---------------------------------------------------------------------------------


def _run_file(
    result: ReferenceResult,
    name: str,
    path: Path,
    columns: tuple[str, ...],
    check: Callable[[Row, set[str]], str | None],
    on_accept: Callable[[Row], None] | None = None,
) -> None:
    read = accepted = 0
    seen: set[str] = set()  # settlement ids / (settlement, line_no) keys met earlier in the file
    for number, row, settlement_id in _rows(path, columns):
        read += 1
        failing = "row" if row is None else check(row, seen)
        if failing is None:
            accepted += 1
            if on_accept is not None and row is not None:
                on_accept(row)
        else:
            result.rejects.append((path.name, number, settlement_id, failing))
    result.counts[name] = FileCounts(read, accepted, read - accepted)


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, Row | None, str]]:
    """``(row number, stripped row, settlement_id)`` of every non-blank record of a file.

    The row number is the line the record starts on (header = line 1). The row is ``None``
    when the record has the wrong number of fields.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise MissingColumnError(f"{path.name}: missing column(s) {', '.join(missing)}")
        id_at = header.index("settlement_id")
        last_line = reader.line_num
        for fields in reader:
            number, last_line = last_line + 1, reader.line_num
            if not fields:
                continue  # a blank line is no record
            sid = fields[id_at].strip() if id_at < len(fields) else ""
            if len(fields) != len(header):
                yield number, None, _shown(sid)
            else:
                row = dict(zip(header, fields, strict=True))
                yield number, {c: row[c].strip() for c in columns}, _shown(sid)


def _shown(settlement_id: str) -> str:
    """A settlement id as a reject may repeat it (never something shaped like an identifier)."""
    safe = re.fullmatch(r"[A-Za-z0-9_.:/-]{1,64}", settlement_id)
    shown = not settlement_id or (safe and not NATIONAL_ID.fullmatch(settlement_id))
    return settlement_id if shown else "(withheld)"


# --- settlements.csv -------------------------------------------------------------------------


def _settlement_failure(row: Row, site_id: str, seen: set[str]) -> str | None:
    """The first failing column of one settlement row, or ``None``."""
    sid = row["settlement_id"]
    duplicate = sid in seen
    if sid:
        seen.add(sid)
    if not sid or duplicate:
        return "settlement_id"
    if row["site_id"] != site_id:
        return "site_id"
    site_type = row["site_type"]
    if site_type not in ("hospital", "clinic", "pharmacy"):
        return "site_type"
    if not _national_id(row["patient_id"]):
        return "patient_id"
    if row["gender"] not in ("M", "F"):
        return "gender"
    admit = _datetime(row["admit_time"])
    birth = _date(row["birth_date"])
    if birth is None or (admit is not None and birth > admit.date()):
        return "birth_date"
    if row["insurance_type"] not in ("employee", "resident"):
        return "insurance_type"
    visit = row["visit_type"]
    if visit not in ("outpatient", "inpatient", "pharmacy"):
        return "visit_type"
    if (visit == "pharmacy") != (site_type == "pharmacy"):
        return "visit_type"
    if admit is None:
        return "admit_time"
    discharge = row["discharge_time"]
    if visit == "inpatient":
        left = _datetime(discharge)
        if left is None or left < admit:
            return "discharge_time"
    elif discharge:
        return "discharge_time"
    diagnoses = row["diagnosis_codes"]
    if (not diagnoses and visit != "pharmacy") or (
        diagnoses and not DIAGNOSIS_LIST.fullmatch(diagnoses)
    ):
        return "diagnosis_codes"
    total = _money(row["total_amount"])
    if total is None:
        return "total_amount"
    paid = _money(row["fund_paid"])
    if paid is None or paid > total:
        return "fund_paid"
    settled = _datetime(row["settle_time"])
    if settled is None or settled < admit:
        return "settle_time"
    return None


def _national_id(value: str) -> bool:
    if not NATIONAL_ID.fullmatch(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == value[17]


# --- lines.csv -------------------------------------------------------------------------------


def _line_failure(
    row: Row,
    site_id: str,
    accepted_ids: set[str],
    seen: set[str],
    drugs: frozenset[str],
    services: frozenset[str],
) -> str | None:
    """The first failing column of one fee line, or ``None``."""
    sid = row["settlement_id"]
    line_no = row["line_no"]
    line_ok = bool(INTEGER.fullmatch(line_no)) and int(line_no) >= 1
    duplicate = False
    if line_ok:
        key = f"{sid}\0{int(line_no)}"
        duplicate = key in seen
        seen.add(key)
    if sid not in accepted_ids:
        return "settlement_id"
    if row["site_id"] != site_id:
        return "site_id"
    if not line_ok or duplicate:
        return "line_no"
    item_type = row["item_type"]
    if item_type not in ("drug", "consumable", "service"):
        return "item_type"
    if row["item_code"] not in (drugs if item_type == "drug" else services):
        return "item_code"
    trace = row["trace_code"]
    if trace and not TRACE_CODE.fullmatch(trace):
        return "trace_code"
    quantity_text = row["quantity"]
    if not QUANTITY.fullmatch(quantity_text) or Decimal(quantity_text) <= 0:
        return "quantity"
    quantity = Decimal(quantity_text)
    price = _money(row["unit_price"])
    if price is None:
        return "unit_price"
    amount = _money(row["amount"])
    if amount is None or abs(amount - quantity * price) > TOLERANCE:
        return "amount"
    days = row["days_supply"]
    if days and not (INTEGER.fullmatch(days) and int(days) >= 1):
        return "days_supply"
    if _datetime(row["order_time"]) is None:
        return "order_time"
    return None


# --- labels.csv ------------------------------------------------------------------------------

LABEL_VIOLATIONS = frozenset(("", MODEL_VIOLATION, *RULE_IDS))


def _label_failure(row: Row, site_id: str, accepted_ids: set[str], seen: set[str]) -> str | None:
    sid = row["settlement_id"]
    repeated = sid in seen
    seen.add(sid)
    if sid not in accepted_ids or repeated:
        return "settlement_id"
    if row["site_id"] != site_id:
        return "site_id"
    if row["label"] not in ("0", "1"):
        return "label"
    if row["violation_type"] not in LABEL_VIOLATIONS:
        return "violation_type"
    return None


# --- values ----------------------------------------------------------------------------------


def _date(value: str) -> date | None:
    if not DATE_SHAPE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None


def _datetime(value: str) -> datetime | None:
    if not DATETIME_SHAPE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def _money(value: str) -> Decimal | None:
    return Decimal(value) if MONEY.fullmatch(value) else None


# --- desensitization cost ----------------------------------------------------------------------


def _desensitize(row: Row, key: bytes) -> int:
    """Pseudonyms and age of one accepted settlement, computed and dropped; returns HMAC count."""
    count = 0
    for kind, column in (
        ("patient", "patient_id"),
        ("doctor", "doctor_id"),
        ("pharmacist", "pharmacist_id"),
    ):
        value = row[column]
        if value and value != UNKNOWN_DOCTOR:
            mac = hmac.new(key, kind.encode() + b"\0" + value.encode(), hashlib.sha256)
            mac.digest()
            count += 1
    birth = datetime.strptime(row["birth_date"], "%Y-%m-%d").date()
    admitted = datetime.strptime(row["admit_time"], "%Y-%m-%dT%H:%M:%S").date()
    _age = admitted.year - birth.year - ((admitted.month, admitted.day) < (birth.month, birth.day))
    return count
