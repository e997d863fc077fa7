"""A PreCheck claim is validated exactly as ingest validates the same rows: same verdict, field
and reason, whatever one field holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrisk.models.kb import load_kb
from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.claimvalidate import ClaimError, check_lines, check_settlement, to_claim, trimmed
from fedrisk.node.csvread import CsvColumns
from fedrisk.node.validate import Known, finish_lines, validate_settlements
from fedrisk.node.validate import check_lines as arrow_check_lines
from tests.test_validate_properties import GOOD

KB = load_kb(None)
DRUG = next(iter(KB.drugs))
LINE = {
    "settlement_id": "S1",
    "site_id": "H1",
    "line_no": "1",
    "item_type": "drug",
    "item_code": DRUG,
    "item_name": "x",
    "trace_code": "",
    "quantity": "2",
    "unit_price": "10.50",
    "amount": "21.00",
    "days_supply": "",
    "order_time": "2026-03-04T16:45:00",
}
EMPTY = pa.array([], pa.string())
ROOM = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _columns(name: str, rows: list[dict[str, str]], columns: tuple[str, ...]) -> CsvColumns:
    """Rows as ingest would read them: every value whitespace-trimmed by Arrow."""
    table = pa.table(
        {c: pc.utf8_trim_whitespace(pa.array([r[c] for r in rows], pa.string())) for c in columns}
    )
    return CsvColumns(Path(name), table, np.arange(2, 2 + len(rows)), ())


def _ingest_verdict(settlement: dict[str, str], lines: list[dict[str, str]]) -> str | None:
    """What ingest says of these rows: None if all are accepted, else 'where.field: reason'."""
    read = _columns("settlements.csv", [settlement], SETTLEMENT_COLUMNS)
    checked = validate_settlements(read, "H1", EMPTY)
    if checked.rejects:
        return f"settlement.{checked.rejects[0].field}: {checked.rejects[0].reason}"
    pending = arrow_check_lines(_columns("lines.csv", lines, LINE_COLUMNS), "H1", KB)
    ids = read.column("settlement_id").combine_chunks()
    done = finish_lines(pending, Known(ids, ids, EMPTY), EMPTY)
    if done.rejects:
        first = done.rejects[0]
        return f"lines[{first.row - 2}].{first.field}: {first.reason}"
    return None


def _claim_verdict(settlement: dict[str, str], lines: list[dict[str, str]]) -> str | None:
    s = trimmed(settlement, SETTLEMENT_COLUMNS)
    try:
        check_settlement(s, "H1")
        check_lines([trimmed(line, LINE_COLUMNS) for line in lines], s["settlement_id"], "H1", KB)
    except ClaimError as error:
        return str(error)
    return None


def test_the_good_claim_is_valid_both_ways() -> None:
    assert _ingest_verdict(GOOD, [LINE]) is None
    assert _claim_verdict(GOOD, [LINE]) is None


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=24
)
typical = st.sampled_from(
    [
        "",
        " ",
        "0",
        "1",
        "-1",
        "00",
        "2.5",
        "1.234",
        "1.2345",
        "10.50",
        "21.01",
        "21.02",
        "2026-02-30",
        "2026-02-28",
        "1940-05-16",
        "2026-03-04T16:40:00",
        "2026-03-04T24:00:00",
        "2026-03-03T16:40:00",
        "inpatient",
        "pharmacy",
        "outpatient",
        "F",
        "M",
        "X",
        "110101194005168668",
        "110101194005168669",
        "K21.000",
        "K21.000|I10",
        "k21",
        "drug",
        "service",
        DRUG,
        "12345678901234567890",
        "1234567890123456789",
        " S1 ",
        "S2",
        "H2",
        "\u3000H1",
        "H1\x1f",
        "resident",
        "employee",
        "clinic",
        "99.00",
    ]
)


@ROOM
@given(field=st.sampled_from(SETTLEMENT_COLUMNS), value=st.one_of(text, typical))
def test_one_changed_settlement_field_gets_the_same_verdict(field: str, value: str) -> None:
    settlement = dict(GOOD, **{field: value})
    line = dict(LINE, settlement_id=settlement["settlement_id"])
    assert _claim_verdict(settlement, [line]) == _ingest_verdict(settlement, [line])


@ROOM
@given(
    field=st.sampled_from(LINE_COLUMNS),
    value=st.one_of(text, typical),
    second=st.booleans(),
)
def test_one_changed_line_field_gets_the_same_verdict(field: str, value: str, second: bool) -> None:
    lines = [LINE, dict(LINE, line_no="2")]
    lines[1 if second else 0] = dict(lines[1 if second else 0], **{field: value})
    assert _claim_verdict(GOOD, lines) == _ingest_verdict(GOOD, lines)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"birth_date": "2026-02-30"}, "settlement.birth_date: not a real date"),
        ({"patient_id": "110101194005168668"}, "settlement.patient_id: not an 18-character"),
        ({"fund_paid": "40.01"}, "settlement.fund_paid: greater than total_amount"),
        ({"visit_type": "inpatient"}, "settlement.discharge_time: empty for an inpatient stay"),
    ],
)
def test_errors_name_the_field(change: dict[str, str], where: str) -> None:
    with pytest.raises(ClaimError, match=where.replace(".", r"\.", 1)):
        check_settlement(trimmed(GOOD | change, SETTLEMENT_COLUMNS), "H1")


def test_a_valid_claim_carries_pseudonyms_and_an_age_never_the_identifiers() -> None:
    claim = to_claim(trimmed(GOOD, SETTLEMENT_COLUMNS), [trimmed(LINE, LINE_COLUMNS)], bytes(32))
    text = repr(claim)
    assert GOOD["patient_id"] not in text and GOOD["doctor_id"] not in text
    assert claim.age == 85 and claim.doctor_status == "ok" and len(claim.patient) == 32
    assert claim.lines[0].quantity == 2 and claim.diagnoses == ("K21.000",)


@pytest.mark.parametrize("pad", ["\u3000", "\xa0", "\t", "\x1c", "\x1f", "\u200b", "\ufeff"])
def test_values_are_trimmed_exactly_as_ingest_trims_them(pad: str) -> None:
    settlement = dict(GOOD, site_id=pad + "H1" + pad)
    line = dict(LINE, quantity=pad + "2")
    assert _claim_verdict(settlement, [line]) == _ingest_verdict(settlement, [line])


def test_str_strip_trims_exactly_what_arrow_trims_at_every_code_point() -> None:
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000]
    trimmed_by_arrow = pc.utf8_trim_whitespace(pa.array([c + "a" for c in chars])).to_pylist()
    differ = [
        hex(ord(c))
        for c, v in zip(chars, trimmed_by_arrow, strict=True)
        if (v == "a") != ((c + "a").strip() == "a")
    ]
    assert differ == []
