"""Validation of one PreCheck claim, value by value: the checks of docs/validation.md.

Ingest validates whole files with vectorised Arrow checks (node/validate.py); for a single
claim those cost ~3 ms in per-call overhead, more than PreCheck's whole budget, so a claim is
checked here in plain Python — the same checks, in the same order, with the same reasons
(``tests/test_claimvalidate.py`` runs both on the same mutated claims and requires the same
verdict). The first failing field is reported as ``settlement.<field>`` or
``lines[<i>].<field>``; like a reject, the reason never repeats an identifier's value.

A valid claim becomes a :class:`~fedrisk.models.rules.claimcheck.Claim`: identifiers replaced by
the node's pseudonyms, the age computed from the birth date, which is then dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache

from fedrisk.crypto.pseudonym import pseudonym
from fedrisk.models.errors import FedriskError
from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rules.claimcheck import Claim, ClaimLine
from fedrisk.models.schema import (
    AMOUNT_TOLERANCE,
    GENDERS,
    INSURANCE_TYPES,
    INTEGER_PATTERN,
    ITEM_TYPES,
    LINE_COLUMNS,
    MONEY_PATTERN,
    PATIENT_ID_PATTERN,
    QUANTITY_PATTERN,
    SETTLEMENT_COLUMNS,
    SITE_TYPES,
    TRACE_CODE_PATTERN,
    UNKNOWN_DOCTOR,
    VISIT_TYPES,
)
from fedrisk.node.validate import DIAGNOSIS_LIST_PATTERN, NO_SUCH_SETTLEMENT

_DATE = re.compile(r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}$")
_DATETIME = re.compile(
    r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
)
# Compiled once: PreCheck matches ~20 values a claim.
_MONEY = re.compile(MONEY_PATTERN)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_INTEGER = re.compile(INTEGER_PATTERN)
_PATIENT_ID = re.compile(PATIENT_ID_PATTERN)
_TRACE_CODE = re.compile(TRACE_CODE_PATTERN)
_DIAGNOSES = re.compile(DIAGNOSIS_LIST_PATTERN)
_TOLERANCE = Decimal(str(AMOUNT_TOLERANCE))
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_REAL_DATETIME = "not a real datetime YYYY-MM-DDTHH:MM:SS"


class ClaimError(FedriskError):
    """A claim that breaks the data contract; ``field`` names where (e.g. lines[0].quantity)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class _First:
    """The first failing field in contract column order, with its first reason.

    Callers test a condition and call :meth:`fail` only when it holds: nearly every check of
    nearly every claim passes, and PreCheck runs ~50 of them a claim.
    """

    columns: tuple[str, ...]
    found: tuple[int, str] | None = None

    def fail(self, column: str, reason: str) -> None:
        index = self.columns.index(column)
        if self.found is None or index < self.found[0]:
            self.found = (index, reason)

    def raise_for(self, prefix: str) -> None:
        if self.found is not None:
            raise ClaimError(f"{prefix}.{self.columns[self.found[0]]}", self.found[1])


def trimmed(values: Mapping[str, str], columns: Sequence[str]) -> dict[str, str]:
    """The contract columns of a record, trimmed as ingest trims them ('' when absent).

    ``str.strip`` trims exactly the characters Arrow's ``utf8_trim_whitespace`` does (checked
    over every code point when this was written; tests/test_claimvalidate.py keeps checking).
    """
    return {c: str(values.get(c, "") or "").strip() for c in columns}


def trimmed_message(message: object, columns: Sequence[str]) -> dict[str, str]:
    """:func:`trimmed` of a protobuf record (its strings are never absent or null), without
    the dict in between: PreCheck does this for every field of every claim."""
    return {c: getattr(message, c).strip() for c in columns}


def check_settlement(s: Mapping[str, str], site_id: str) -> None:
    """Raise :class:`ClaimError` for the first field of the settlement that breaks the contract."""
    f = _First(SETTLEMENT_COLUMNS)
    if s["settlement_id"] == "":
        f.fail("settlement_id", "empty")
    if s["site_id"] != site_id:
        f.fail("site_id", _other_site(site_id))
    site_type, visit = s["site_type"], s["visit_type"]
    if site_type not in SITE_TYPES:
        f.fail("site_type", _enum(SITE_TYPES))
    if not _national_id(s["patient_id"]):
        f.fail("patient_id", _ID_REASON)
    if s["gender"] not in GENDERS:
        f.fail("gender", _enum(GENDERS))
    birth, admit = _date(s["birth_date"]), _datetime(s["admit_time"])
    if birth is None:
        f.fail("birth_date", "not a real date YYYY-MM-DD")
    elif admit is not None and birth > admit.date():
        f.fail("birth_date", "after the admission date")
    if s["insurance_type"] not in INSURANCE_TYPES:
        f.fail("insurance_type", _enum(INSURANCE_TYPES))
    if visit not in VISIT_TYPES:
        f.fail("visit_type", _enum(VISIT_TYPES))
    elif site_type in SITE_TYPES and (site_type == "pharmacy") != (visit == "pharmacy"):
        f.fail("visit_type", _PHARMACY)
    if admit is None:
        f.fail("admit_time", _REAL_DATETIME)
    _check_discharge(f, s["discharge_time"], visit, admit)
    diagnoses = s["diagnosis_codes"]
    if diagnoses == "" and visit != "pharmacy":
        f.fail("diagnosis_codes", _EMPTY_DIAGNOSES)
    elif diagnoses != "" and _DIAGNOSES.match(diagnoses) is None:
        f.fail("diagnosis_codes", "not ICD-10 codes joined by '|'")
    total, paid = _money(f, "total_amount", s), _money(f, "fund_paid", s)
    if total is not None and paid is not None and paid > total:
        f.fail("fund_paid", "greater than total_amount")
    settle = _datetime(s["settle_time"])
    if settle is None:
        f.fail("settle_time", _REAL_DATETIME)
    elif admit is not None and settle < admit:
        f.fail("settle_time", "before admit_time")
    f.raise_for("settlement")


def check_lines(
    lines: Sequence[Mapping[str, str]], settlement_id: str, site_id: str, kb: KnowledgeBase
) -> None:
    """Raise :class:`ClaimError` for the first line (in order) that breaks the contract."""
    seen: set[str] = set()
    for i, line in enumerate(lines):
        f = _First(LINE_COLUMNS)
        if line["settlement_id"] != settlement_id:
            f.fail("settlement_id", NO_SUCH_SETTLEMENT)
        if line["site_id"] != site_id:
            f.fail("site_id", _other_site(site_id))
        _check_line_no(f, line, seen)
        _check_item(f, line["item_type"], line["item_code"], kb)
        trace = line["trace_code"]
        if trace != "" and _TRACE_CODE.match(trace) is None:
            f.fail("trace_code", "not empty nor 20 digits")
        quantity = _decimal(_QUANTITY, line["quantity"])
        if quantity is None:
            f.fail("quantity", "not a decimal with at most three decimals")
        elif quantity <= 0:
            f.fail("quantity", "not greater than 0")
        price, amount = _money(f, "unit_price", line), _money(f, "amount", line)
        computed = None if price is None or quantity is None else quantity * price
        if amount is not None and computed is not None and abs(amount - computed) > _TOLERANCE:
            f.fail("amount", "differs from quantity x unit_price by more than 0.01")
        days = line["days_supply"]
        if days != "" and not _positive_integer(days):
            f.fail("days_supply", "not empty nor an integer >= 1")
        if _datetime(line["order_time"]) is None:
            f.fail("order_time", _REAL_DATETIME)
        f.raise_for(f"lines[{i}]")


def to_claim(
    s: Mapping[str, str], lines: Sequence[Mapping[str, str]], pseudonym_key: bytes
) -> Claim:
    """A checked claim as the rules see it: pseudonyms and an age, no identifier."""
    admit = _datetime(s["admit_time"])
    birth = _date(s["birth_date"])
    assert admit is not None and birth is not None  # checked
    doctor_raw = s["doctor_id"]
    real_doctor = doctor_raw not in ("", UNKNOWN_DOCTOR)
    status = "ok" if real_doctor else "unknown" if doctor_raw == UNKNOWN_DOCTOR else "missing"
    return Claim(
        site_id=s["site_id"],
        settlement_id=s["settlement_id"],
        site_type=s["site_type"],
        patient=pseudonym(pseudonym_key, "patient", s["patient_id"]),
        gender=s["gender"],
        age=admit.year - birth.year - ((admit.month, admit.day) < (birth.month, birth.day)),
        visit_type=s["visit_type"],
        admit_time=admit,
        discharge_time=_datetime(s["discharge_time"]),
        diagnoses=tuple(s["diagnosis_codes"].split("|")) if s["diagnosis_codes"] else (),
        doctor=pseudonym(pseudonym_key, "doctor", doctor_raw) if real_doctor else None,
        doctor_status=status,
        lines=tuple(_line(line) for line in lines),
        drg_code=s["drg_code"],
        total_amount=Decimal(s["total_amount"]),
        fund_paid=Decimal(s["fund_paid"]),
        settle_time=_datetime(s["settle_time"]),
    )


def _line(line: Mapping[str, str]) -> ClaimLine:
    order = _datetime(line["order_time"])
    assert order is not None  # checked
    return ClaimLine(
        line_no=int(line["line_no"]),
        item_type=line["item_type"],
        item_code=line["item_code"],
        trace_code=line["trace_code"] or None,
        quantity=Decimal(line["quantity"]),
        days_supply=int(line["days_supply"]) if line["days_supply"] else None,
        order_time=order,
        unit_price=Decimal(line["unit_price"]),
        amount=Decimal(line["amount"]),
    )


_ID_REASON = "not an 18-character national ID with a valid check digit"
_PHARMACY = "pharmacy visits happen at pharmacy sites only, and only there"
_EMPTY_DIAGNOSES = "empty (allowed only for pharmacy visits)"


def _check_discharge(f: _First, text: str, visit: str, admit: datetime | None) -> None:
    if visit != "inpatient":
        if text != "":
            f.fail("discharge_time", "given for a visit that is not inpatient")
        return
    parsed = _datetime(text)
    if text == "":
        f.fail("discharge_time", "empty for an inpatient stay")
    elif parsed is None:
        f.fail("discharge_time", _REAL_DATETIME)
    elif admit is not None and parsed < admit:
        f.fail("discharge_time", "before admit_time")


def _check_line_no(f: _First, line: Mapping[str, str], seen: set[str]) -> None:
    number = line["line_no"]
    if not _positive_integer(number):
        f.fail("line_no", "not an integer >= 1")
        return
    key = f"{line['settlement_id']}#{number.lstrip('0')}"
    if key in seen:
        f.fail("line_no", "duplicate line_no in the settlement")
    seen.add(key)


def _check_item(f: _First, item_type: str, code: str, kb: KnowledgeBase) -> None:
    if item_type == "drug":
        known = code in kb.drugs
    elif item_type in ITEM_TYPES:
        known = code in kb.services
    else:
        f.fail("item_type", _enum(ITEM_TYPES))
        known = code in kb.drugs or code in kb.services
    if not known:
        f.fail("item_code", "not a code of the knowledge base for this item_type")


def _money(f: _First, name: str, record: Mapping[str, str]) -> Decimal | None:
    value = _decimal(_MONEY, record[name])
    if value is None:
        f.fail(name, "not an amount with at most two decimals")
    return value


def _decimal(pattern: re.Pattern[str], text: str) -> Decimal | None:
    return Decimal(text) if pattern.match(text) is not None else None


def _positive_integer(text: str) -> bool:
    return _INTEGER.match(text) is not None and text.strip("0") != ""


@lru_cache(maxsize=4096)
def _date(text: str) -> date | None:
    """The date of a YYYY-MM-DD text that names a real day (the shape checked first, so
    ``fromisoformat``'s other accepted forms never pass)."""
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)  # a claim's times are parsed by the checks and again for the rules
def _datetime(text: str) -> datetime | None:
    if not _DATETIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _national_id(text: str) -> bool:
    if _PATIENT_ID.match(text) is None:
        return False
    total = sum(int(c) * w for c, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return text[17] == _ID_CHECK[total % 11]


@cache
def _other_site(site_id: str) -> str:
    return f"is not this node's site {site_id}"


@cache
def _enum(allowed: tuple[str, ...]) -> str:
    return f"not one of {', '.join(allowed)}"
