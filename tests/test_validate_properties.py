"""Property tests of the validator: whatever a field holds, every row is accounted for, and a
row broken in one field is rejected for that field (or for its shape), never silently."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrisk.models.schema import SETTLEMENT_COLUMNS
from fedrisk.node.csvread import read_contract_csv
from fedrisk.node.validate import validate_settlements

GOOD = {
    "settlement_id": "S1",
    "site_id": "H1",
    "site_type": "hospital",
    "patient_id": "110101194005168669",
    "patient_name": "患者00190",
    "gender": "F",
    "birth_date": "1940-05-16",
    "insurance_type": "resident",
    "visit_type": "outpatient",
    "admit_time": "2026-03-04T16:40:00",
    "discharge_time": "",
    "diagnosis_codes": "K21.000",
    "drg_code": "",
    "doctor_id": "D0000009",
    "pharmacist_id": "",
    "total_amount": "40.00",
    "fund_paid": "28.00",
    "settle_time": "2026-03-04T17:00:00",
}
# Fields where any text is acceptable.
FREE = {"patient_name", "drg_code", "doctor_id", "pharmacist_id"}
EMPTY_IDS = pa.array([], pa.string())


def _validate(rows: list[dict[str, str]]):  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SETTLEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settlements.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        return validate_settlements(read_contract_csv(path, SETTLEMENT_COLUMNS), "H1", EMPTY_IDS)


def test_the_good_row_is_accepted() -> None:
    result = _validate([GOOD])
    assert result.rejects == [] and result.accepted.num_rows == 1


# Line breaks are left out: an unquoted CR splits a record, which the shape check covers.
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r\n"),
    min_size=0,
    max_size=24,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(SETTLEMENT_COLUMNS), value=text)
def test_one_changed_field_is_either_fine_or_rejected_for_that_field(
    field: str, value: str
) -> None:
    row = dict(GOOD, **{field: value})
    result = _validate([GOOD | {"settlement_id": "S0"}, row])
    assert result.accepted.num_rows + len(result.rejects) == result.rows_read == 2
    assert all(r.settlement_id != "S0" for r in result.rejects)  # the good row is never hurt
    if result.rejects:
        (reject,) = result.rejects
        assert (
            reject.field in (field, "row")
            or (
                # a changed admit_time may make a correct birth/settle time inconsistent with it
                field == "admit_time" and reject.field in ("birth_date", "settle_time")
            )
            or (
                # a smaller total makes the (unchanged) fund_paid greater than it
                field == "total_amount" and reject.field == "fund_paid"
            )
            or (
                field in ("site_type", "visit_type")
                and reject.field in ("visit_type", "diagnosis_codes", "discharge_time")
            )
        )
        assert reject.row == 3
    elif field not in FREE:
        # accepted with a changed value: the new value must itself be valid for the contract
        assert value.strip() != "" or field in ("discharge_time", "drg_code")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ok", "bad-date", "bad-id", "short"]), min_size=1, max_size=30))
def test_counts_always_add_up(kinds: list[str]) -> None:
    rows = []
    for index, kind in enumerate(kinds):
        row = dict(GOOD, settlement_id=f"S{index}")
        if kind == "bad-date":
            row["birth_date"] = "2026-02-30"
        elif kind == "bad-id":
            row["patient_id"] = "110101194005168668"
        elif kind == "short":
            row["fund_paid"] = "99.00"
        rows.append(row)
    result = _validate(rows)
    assert result.accepted.num_rows + len(result.rejects) == len(kinds)
    assert len(result.rejects) == sum(kind != "ok" for kind in kinds)
    expected_fields = {"bad-date": "birth_date", "bad-id": "patient_id", "short": "fund_paid"}
    for reject in result.rejects:
        assert reject.field == expected_fields[kinds[reject.row - 2]]


def test_a_quoted_line_break_inside_a_value_is_one_record() -> None:
    result = _validate([GOOD | {"patient_name": "患者\n00190"}, GOOD | {"settlement_id": "S2"}])
    assert result.rejects == [] and result.accepted.num_rows == 2
