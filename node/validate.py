"""Validation of contract-v1 files: every row is accepted or rejected with a reason.

The checks are those of docs/validation.md, in the contract's column order; a rejected row
reports its first failing field. Nothing here reads or keeps a value of an identifier beyond
the masks: reasons never repeat ``patient_id``, ``patient_name``, ``birth_date``,
``doctor_id`` or ``pharmacist_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.schema import (
    AMOUNT_TOLERANCE,
    DATE_FORMAT,
    DATETIME_FORMAT,
    GENDERS,
    ICD10_PATTERN,
    INSURANCE_TYPES,
    INTEGER_PATTERN,
    ITEM_TYPES,
    LABEL_COLUMNS,
    LINE_COLUMNS,
    MODEL_VIOLATION,
    MONEY_PATTERN,
    QUANTITY_PATTERN,
    RULE_IDS,
    SETTLEMENT_COLUMNS,
    SITE_TYPES,
    TRACE_CODE_PATTERN,
    VISIT_TYPES,
)
from fedrisk.node import checks
from fedrisk.node.csvread import CsvColumns, safe_settlement_id

NO_SUCH_SETTLEMENT = "no such settlement"
_DIAGNOSES = ICD10_PATTERN[1:-1]
DIAGNOSIS_LIST_PATTERN = f"^{_DIAGNOSES}(\\|{_DIAGNOSES})*$"


@dataclass(frozen=True)
class Reject:
    """One rejected row, as written to ``rejects/<batch>.jsonl``."""

    file: str
    row: int
    settlement_id: str
    field: str
    reason: str
    other_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "row": self.row,
            "settlement_id": self.settlement_id,
            "field": self.field,
            "reason": self.reason,
            "other_fields": list(self.other_fields),
        }


@dataclass(frozen=True)
class Validated:
    """The accepted records of one file (typed columns added) and its rejects."""

    file: str
    rows_read: int
    accepted: pa.Table
    rejects: list[Reject]


@dataclass(frozen=True)
class Known:
    """What lines and labels are checked against: settlements of this batch and of the store."""

    accepted: pa.Array
    rejected: pa.Array
    stored: pa.Array


@dataclass
class _Failures:
    """Failing checks of one file, reduced to the first failing field of each row."""

    columns: tuple[str, ...]
    size: int
    found: list[tuple[int, np.ndarray, str]] = field(default_factory=list)

    def add(self, column: str, bad: np.ndarray, reason: str) -> None:
        if bad.any():
            self.found.append((self.columns.index(column), bad, reason))

    def bad(self) -> np.ndarray:
        any_bad = np.zeros(self.size, dtype=bool)
        for _, bad, _ in self.found:
            any_bad |= bad
        return any_bad

    def rejects(self, data: CsvColumns) -> list[Reject]:
        ordered = sorted(self.found, key=lambda item: item[0])  # stable: check order kept
        ids = data.column("settlement_id")
        out = []
        for index in np.flatnonzero(self.bad()):
            failing = [(col, reason) for col, bad, reason in ordered if bad[index]]
            first_col, reason = failing[0]
            others = tuple(dict.fromkeys(self.columns[c] for c, _ in failing if c != first_col))
            out.append(
                Reject(
                    file=data.file.name,
                    row=int(data.rows[index]),
                    settlement_id=safe_settlement_id(str(ids[int(index)])),
                    field=self.columns[first_col],
                    reason=reason,
                    other_fields=others,
                )
            )
        return out


def validate_settlements(data: CsvColumns, site_id: str, stored: pa.Array) -> Validated:
    """Check settlements.csv; accepted rows gain ``admit_ts``, ``discharge_ts``,
    ``settle_ts`` and ``birth_ts`` timestamp columns."""
    col = data.column
    f = _Failures(SETTLEMENT_COLUMNS, data.table.num_rows)
    _check_settlement_id(f, col("settlement_id"), stored)
    f.add(
        "site_id", ~checks.one_of(col("site_id"), [site_id]), f"is not this node's site {site_id}"
    )
    f.add("site_type", ~checks.one_of(col("site_type"), SITE_TYPES), _enum_reason(SITE_TYPES))
    f.add(
        "patient_id",
        ~checks.national_ids(col("patient_id")),
        "not an 18-character national ID with a valid check digit",
    )
    f.add("gender", ~checks.one_of(col("gender"), GENDERS), _enum_reason(GENDERS))
    birth_ok, birth = checks.timestamps(col("birth_date"), DATE_FORMAT)
    admit_ok, admit = checks.timestamps(col("admit_time"), DATETIME_FORMAT)
    f.add("birth_date", ~birth_ok, "not a real date YYYY-MM-DD")
    f.add(
        "birth_date",
        birth_ok & admit_ok & checks.mask(pc.greater(birth, pc.floor_temporal(admit, unit="day"))),
        "after the admission date",
    )
    f.add(
        "insurance_type",
        ~checks.one_of(col("insurance_type"), INSURANCE_TYPES),
        _enum_reason(INSURANCE_TYPES),
    )
    _check_visit_type(f, col("visit_type"), col("site_type"))
    f.add("admit_time", ~admit_ok, "not a real datetime YYYY-MM-DDTHH:MM:SS")
    discharge = _check_discharge(f, col("discharge_time"), col("visit_type"), admit_ok, admit)
    pharmacy = checks.one_of(col("visit_type"), ["pharmacy"])
    diagnoses = col("diagnosis_codes")
    f.add(
        "diagnosis_codes",
        checks.empty(diagnoses) & ~pharmacy,
        "empty (allowed only for pharmacy visits)",
    )
    f.add(
        "diagnosis_codes",
        ~checks.empty(diagnoses) & ~checks.matches(diagnoses, DIAGNOSIS_LIST_PATTERN),
        "not ICD-10 codes joined by '|'",
    )
    total_ok, total = _money(f, "total_amount", col("total_amount"))
    paid_ok, paid = _money(f, "fund_paid", col("fund_paid"))
    f.add("fund_paid", total_ok & paid_ok & (paid > total + 1e-9), "greater than total_amount")
    settle_ok, settle = checks.timestamps(col("settle_time"), DATETIME_FORMAT)
    f.add("settle_time", ~settle_ok, "not a real datetime YYYY-MM-DDTHH:MM:SS")
    f.add(
        "settle_time",
        settle_ok & admit_ok & checks.mask(pc.less(settle, admit)),
        "before admit_time",
    )
    typed = data.table.append_column("admit_ts", admit).append_column("discharge_ts", discharge)
    typed = typed.append_column("settle_ts", settle).append_column("birth_ts", birth)
    return _result(data, f, typed)


@dataclass(frozen=True)
class PendingLines:
    """Fee lines checked for everything but what needs the settlements and the store.

    Splitting the checks lets a node validate lines while it validates settlements.
    """

    data: CsvColumns
    failures: _Failures
    typed: pa.Table
    keys: pa.ChunkedArray  # settlement_id#line_no, to find lines already stored


def check_lines(data: CsvColumns, site_id: str, kb: KnowledgeBase) -> PendingLines:
    """Check lines.csv on its own; :func:`finish_lines` adds the checks against settlements."""
    col = data.column
    f = _Failures(LINE_COLUMNS, data.table.num_rows)
    f.add(
        "site_id", ~checks.one_of(col("site_id"), [site_id]), f"is not this node's site {site_id}"
    )
    line_no = col("line_no")
    line_ok = checks.matches(line_no, INTEGER_PATTERN) & ~checks.matches(line_no, "^0+$")
    f.add("line_no", ~line_ok, "not an integer >= 1")
    keys = pc.binary_join_element_wise(
        col("settlement_id"), pc.utf8_ltrim(line_no, characters="0"), "#"
    )
    f.add("line_no", line_ok & checks.duplicated(keys), "duplicate line_no in the settlement")
    _check_item(f, col("item_type"), col("item_code"), kb)
    trace = col("trace_code")
    f.add(
        "trace_code",
        ~checks.empty(trace) & ~checks.matches(trace, TRACE_CODE_PATTERN),
        "not empty nor 20 digits",
    )
    qty_ok = checks.matches(col("quantity"), QUANTITY_PATTERN)
    qty = checks.as_float(col("quantity"), qty_ok)
    f.add("quantity", ~qty_ok, "not a decimal with at most three decimals")
    f.add("quantity", qty_ok & (qty <= 0), "not greater than 0")
    price_ok, price = _money(f, "unit_price", col("unit_price"))
    amount_ok, amount = _money(f, "amount", col("amount"))
    values = (col("amount"), col("quantity"), col("unit_price"))
    off = amount_ok & qty_ok & price_ok & _off_by_more_than_a_cent(values, amount, qty * price)
    f.add("amount", off, "differs from quantity x unit_price by more than 0.01")
    days = col("days_supply")
    days_ok = checks.matches(days, INTEGER_PATTERN) & ~checks.matches(days, "^0+$")
    f.add("days_supply", ~checks.empty(days) & ~days_ok, "not empty nor an integer >= 1")
    order_ok, order = checks.timestamps(col("order_time"), DATETIME_FORMAT)
    f.add("order_time", ~order_ok, "not a real datetime YYYY-MM-DDTHH:MM:SS")
    typed = data.table.append_column("line_no_int", _integers(line_no, line_ok))
    typed = typed.append_column("days_supply_int", _integers(days, days_ok)).append_column(
        "order_ts", order
    )
    return PendingLines(data, f, typed, keys)


def finish_lines(pending: PendingLines, known: Known, stored_keys: pa.Array) -> Validated:
    """The checks of lines.csv against this batch's settlements and the store; the result.

    Accepted rows carry ``line_no_int``, ``days_supply_int`` and ``order_ts``.
    """
    f = pending.failures
    _check_parent(f, pending.data.column("settlement_id"), known)
    f.add("line_no", checks.mask(pc.is_in(pending.keys, value_set=stored_keys)), "already ingested")
    return _result(pending.data, f, pending.typed)


def validate_labels(
    data: CsvColumns, site_id: str, known: Known, stored_labels: pa.Array
) -> Validated:
    """Check labels.csv; one label per settlement."""
    col = data.column
    f = _Failures(LABEL_COLUMNS, data.table.num_rows)
    ids = col("settlement_id")
    _check_parent(f, ids, known)
    f.add(
        "settlement_id",
        checks.duplicated(ids),
        "duplicate label for the settlement in file",
    )
    f.add("settlement_id", checks.mask(pc.is_in(ids, value_set=stored_labels)), "already ingested")
    f.add(
        "site_id", ~checks.one_of(col("site_id"), [site_id]), f"is not this node's site {site_id}"
    )
    f.add("label", ~checks.one_of(col("label"), ["0", "1"]), "not 0 or 1")
    allowed = ["", MODEL_VIOLATION, *RULE_IDS]
    f.add(
        "violation_type",
        ~checks.one_of(col("violation_type"), allowed),
        "not empty, 'other' nor a rule id",
    )
    return _result(data, f, data.table)


def _result(data: CsvColumns, f: _Failures, typed: pa.Table) -> Validated:
    bad = f.bad()
    rejects = f.rejects(data)
    for shape in data.bad_shape:
        reason = f"has {shape.actual} fields, the header has {shape.expected}"
        rejects.append(Reject(data.file.name, shape.row, shape.settlement_id, "row", reason))
    rejects.sort(key=lambda r: r.row)
    return Validated(data.file.name, data.rows_read, typed.filter(pa.array(~bad)), rejects)


def _check_settlement_id(f: _Failures, ids: pa.ChunkedArray, stored: pa.Array) -> None:
    is_empty = checks.empty(ids)
    f.add("settlement_id", is_empty, "empty")
    f.add(
        "settlement_id",
        ~is_empty & checks.duplicated(ids),
        "duplicate settlement_id in file",
    )
    f.add("settlement_id", checks.mask(pc.is_in(ids, value_set=stored)), "already ingested")


def _check_parent(f: _Failures, ids: pa.ChunkedArray, known: Known) -> None:
    accepted = checks.mask(pc.is_in(ids, value_set=known.accepted))
    stored = checks.mask(pc.is_in(ids, value_set=known.stored))
    rejected = checks.mask(pc.is_in(ids, value_set=known.rejected))
    f.add("settlement_id", ~accepted & ~stored & rejected, "settlement rejected in this batch")
    f.add("settlement_id", ~accepted & ~stored & ~rejected, NO_SUCH_SETTLEMENT)


def _check_visit_type(f: _Failures, visit: pa.ChunkedArray, site_type: pa.ChunkedArray) -> None:
    visit_ok = checks.one_of(visit, VISIT_TYPES)
    f.add("visit_type", ~visit_ok, _enum_reason(VISIT_TYPES))
    at_pharmacy = checks.one_of(site_type, ["pharmacy"])
    known_site = checks.one_of(site_type, SITE_TYPES)
    pharmacy_visit = checks.one_of(visit, ["pharmacy"])
    mismatch = visit_ok & known_site & (at_pharmacy != pharmacy_visit)
    f.add("visit_type", mismatch, "pharmacy visits happen at pharmacy sites only, and only there")


def _check_discharge(
    f: _Failures,
    discharge: pa.ChunkedArray,
    visit: pa.ChunkedArray,
    admit_ok: np.ndarray,
    admit: pa.ChunkedArray,
) -> pa.ChunkedArray:
    inpatient = checks.one_of(visit, ["inpatient"])
    is_empty = checks.empty(discharge)
    ok, parsed = checks.timestamps(discharge, DATETIME_FORMAT)
    f.add("discharge_time", inpatient & is_empty, "empty for an inpatient stay")
    f.add("discharge_time", inpatient & ~is_empty & ~ok, "not a real datetime YYYY-MM-DDTHH:MM:SS")
    f.add(
        "discharge_time",
        inpatient & ok & admit_ok & checks.mask(pc.less(parsed, admit)),
        "before admit_time",
    )
    f.add("discharge_time", ~inpatient & ~is_empty, "given for a visit that is not inpatient")
    return parsed


def _check_item(
    f: _Failures, item_type: pa.ChunkedArray, code: pa.ChunkedArray, kb: KnowledgeBase
) -> None:
    type_ok = checks.one_of(item_type, ITEM_TYPES)
    f.add("item_type", ~type_ok, _enum_reason(ITEM_TYPES))
    is_drug = checks.one_of(item_type, ["drug"])
    in_drugs = checks.one_of(code, kb.drugs)
    in_services = checks.one_of(code, kb.services)
    known = np.where(is_drug, in_drugs, np.where(type_ok, in_services, in_drugs | in_services))
    f.add("item_code", ~known, "not a code of the knowledge base for this item_type")


def _money(f: _Failures, name: str, values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    ok = checks.matches(values, MONEY_PATTERN)
    f.add(name, ~ok, "not an amount with at most two decimals")
    return ok, checks.as_float(values, ok)


def _off_by_more_than_a_cent(
    texts: tuple[pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray],
    amount: np.ndarray,
    product: np.ndarray,
) -> np.ndarray:
    """|amount − quantity × unit_price| > 0.01, exactly.

    Floats decide every row except those within rounding distance of the tolerance, which are
    recomputed in decimal (a float64 product of prices in the millions errs by more than 1e-9).
    """
    gap = np.abs(amount - product)
    slack = 1e-9 + 1e-12 * np.maximum(1.0, np.abs(amount))
    off = np.asarray(gap > AMOUNT_TOLERANCE, dtype=bool)
    amount_text, qty_text, price_text = texts
    for i in map(int, np.flatnonzero(np.abs(gap - AMOUNT_TOLERANCE) <= slack)):
        exact = _decimal(amount_text, i) - _decimal(qty_text, i) * _decimal(price_text, i)
        off[i] = abs(exact) > Decimal(str(AMOUNT_TOLERANCE))
    return off


def _decimal(values: pa.ChunkedArray, index: int) -> Decimal:
    return Decimal(str(values[index]))


def _integers(values: pa.ChunkedArray, ok: np.ndarray) -> pa.Array:
    text = pc.if_else(pa.array(ok), values, pa.scalar(None, pa.string()))
    return pc.cast(text, pa.int64())


def _enum_reason(allowed: tuple[str, ...]) -> str:
    return f"not one of {', '.join(allowed)}"
