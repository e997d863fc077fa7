"""Unit tests of the oracle (tests/oracle.py) and the rule engine on tiny hand-made data.

Each rule has positive and negative cases, including the edges of docs/rules.md: exactly at a
limit is not a violation and one over is; windows are inclusive. Every case of a single-site
rule also goes through the real node: the data is ingested into node homes, screened by the
rule engine, and its flags must equal the oracle's (duplicate trace codes within each site).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fedrisk.models.kb import KnowledgeBase, load_kb
from fedrisk.models.rules.catalogue import SINGLE_SITE
from fedrisk.models.schema import (
    LABEL_COLUMNS,
    LINE_COLUMNS,
    SETTLEMENT_COLUMNS,
    national_id_check_digit,
)
from tests.oracle import MALFORMED_COLUMNS, OracleDataError, age_on, evaluate
from tests.screening import engine_flags, oracle_single_site

KB = load_kb()

SEMAGLUTIDE = "XA10BJ06001"  # needs E11, max_units 3, max_days_supply 84, monitored
METFORMIN = "XA10BA02001"  # max_units 6, max_days_supply 90, days_per_unit 15, not monitored
NICOTINAMIDE = "XA11HA01001"  # indications E52|L
WARFARIN = "XB01AA03001"
IBUPROFEN = "XM01AE01001"  # max_units 2, max_days_supply 14, days_per_unit 10, no indications
CLOPIDOGREL = "XB01AC04001"
SERTRALINE = "XN06AB06001"  # max_days_supply 90
SILDENAFIL = "XG04BE03001"  # male only
HYSTEROSCOPY = "S331302001"  # female only, min_age 12
NEONATAL = "S330201001"  # max_age 1
CONSULTATION = "S110100001"  # max_per_day 3
BED_DAY = "S120100001"  # max_per_day 1


def patient(n: int) -> str:
    """A valid 18-character national ID, distinct for each n."""
    first17 = f"33010619800101{n:03d}"
    return first17 + national_id_check_digit(first17)


def st(sid: str, site: str = "H1", **values: object) -> dict[str, str]:
    """One settlements.csv row with harmless defaults (an outpatient visit at a hospital)."""
    pharmacy = site.startswith("P")
    row: dict[str, object] = {
        "settlement_id": sid,
        "site_id": site,
        "site_type": "pharmacy" if pharmacy else "hospital",
        "patient_id": patient(1),
        "patient_name": "患者",
        "gender": "F",
        "birth_date": "1980-01-01",
        "insurance_type": "employee",
        "visit_type": "pharmacy" if pharmacy else "outpatient",
        "admit_time": "2026-03-01T09:00:00",
        "discharge_time": "",
        "diagnosis_codes": "E11.900",
        "drg_code": "",
        "doctor_id": "" if pharmacy else "D0000001",
        "pharmacist_id": "Y1" if pharmacy else "",
        "total_amount": "100.00",
        "fund_paid": "70.00",
        "settle_time": "2026-03-01T09:20:00",
    }
    if "admit_time" in values and "settle_time" not in values:
        row["settle_time"] = at(str(values["admit_time"]), minutes=20)
    row.update(values)
    return {k: str(v) for k, v in row.items()}


def ln(sid: str, code: str, site: str = "H1", **values: object) -> dict[str, str]:
    """One lines.csv row of item ``code`` (line_no is filled in by ``make``)."""
    drug = code in KB.drugs
    price = (KB.drugs[code] if drug else KB.services[code]).typical_unit_price
    quantity = Decimal(str(values.get("quantity", 1)))
    unit_price = Decimal(str(values.get("unit_price", price)))
    row: dict[str, object] = {
        "settlement_id": sid,
        "site_id": site,
        "line_no": "",
        "item_type": "drug" if drug else "service",
        "item_code": code,
        "item_name": "item",
        "trace_code": "",
        "quantity": quantity,
        "unit_price": f"{unit_price:.2f}",
        "amount": f"{quantity * unit_price:.2f}",
        "days_supply": "",
        "order_time": "2026-03-01T09:05:00",
    }
    row.update(values)
    return {k: str(v) for k, v in row.items()}


def _write(path: Path, columns: Iterable[str], rows: Iterable[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def make(
    root: Path,
    settlements: Sequence[dict[str, str]],
    lines: Sequence[dict[str, str]] = (),
    malformed: Sequence[dict[str, str]] = (),
) -> Path:
    """Write a data directory: one folder per site_id of the rows given.

    A malformed row names its folder in an extra ``site`` key, which is not written.
    """
    sites = sorted({r["site_id"] for r in settlements} | {r["site_id"] for r in lines})
    numbers: dict[tuple[str, str], int] = {}
    for row in lines:
        if not row["line_no"]:
            key = (row["site_id"], row["settlement_id"])
            numbers[key] = numbers.get(key, 0) + 1
            row["line_no"] = str(numbers[key])
    for site in sites:
        folder = root / site
        folder.mkdir(parents=True, exist_ok=True)
        own = [r for r in settlements if r["site_id"] == site]
        _write(folder / "settlements.csv", SETTLEMENT_COLUMNS, own)
        _write(folder / "lines.csv", LINE_COLUMNS, [r for r in lines if r["site_id"] == site])
        _write(folder / "labels.csv", LABEL_COLUMNS, [])
        bad = [{k: v for k, v in m.items() if k != "site"} for m in malformed if m["site"] == site]
        _write(folder / "malformed.csv", MALFORMED_COLUMNS, bad)
    return root


def flagged(
    root: Path,
    rule: str,
    settlements: Sequence[dict[str, str]],
    lines: Sequence[dict[str, str]] = (),
    malformed: Sequence[dict[str, str]] = (),
    kb: KnowledgeBase = KB,
) -> set[tuple[str, str]]:
    """The (site_id, settlement_id) pairs that ``rule`` flags on the data given (oracle); for
    a single-site rule, the engine must flag the same."""
    make(root, settlements, lines, malformed)
    if rule in SINGLE_SITE:
        assert_engine_agrees(root, kb, rule)
    return {(site, sid) for r, site, sid in evaluate(root, kb) if r == rule}


def assert_engine_agrees(root: Path, kb: KnowledgeBase, rule: str | None = None) -> None:
    """Ingest ``root``'s sites into node homes, screen them, compare with the oracle."""
    assert kb is KB, "the engine's nodes use the default knowledge base"
    engine = engine_flags(root, root / "homes")
    expected = oracle_single_site(root, kb)
    if rule is not None:
        engine = {f for f in engine if f[0] == rule}
        expected = {f for f in expected if f[0] == rule}
    assert engine == expected, f"engine only: {engine - expected}; oracle only: {expected - engine}"


def at(base: str, **delta: float) -> str:
    """An ISO datetime ``delta`` after ``base``."""
    return (datetime.fromisoformat(base) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------------------------


def test_age_in_completed_years() -> None:
    assert age_on(date(2014, 3, 1), date(2026, 3, 1)) == 12  # birthday counts
    assert age_on(date(2014, 3, 2), date(2026, 3, 1)) == 11
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


def test_gender_conflict(tmp_path: Path) -> None:
    settlements = [
        st("S1", gender="M"),
        st("S2", gender="F"),
        st("S3", gender="F"),
        st("S4", gender="M"),
    ]
    lines = [
        ln("S1", HYSTEROSCOPY),
        ln("S2", HYSTEROSCOPY),
        ln("S3", SILDENAFIL),
        ln("S4", SILDENAFIL),
    ]
    assert flagged(tmp_path, "gender_conflict", settlements, lines) == {("H1", "S1"), ("H1", "S3")}


def test_age_conflict_edges(tmp_path: Path) -> None:
    admit = "2026-03-01T09:00:00"
    settlements = [
        st("S12", birth_date="2014-03-01", admit_time=admit),  # 12 on the day: min_age 12 ok
        st("S11", birth_date="2014-03-02", admit_time=admit),  # 11: below min_age 12
        st("N1", birth_date="2024-03-02", admit_time=admit),  # 1: max_age 1 ok
        st("N2", birth_date="2024-03-01", admit_time=admit),  # 2: above max_age 1
    ]
    lines = [
        ln("S12", HYSTEROSCOPY),
        ln("S11", HYSTEROSCOPY),
        ln("N1", NEONATAL),
        ln("N2", NEONATAL),
    ]
    assert flagged(tmp_path, "age_conflict", settlements, lines) == {("H1", "S11"), ("H1", "N2")}


def test_over_quantity_drug_units_and_days(tmp_path: Path) -> None:
    settlements = [st(s) for s in ("U3", "U4", "U22", "D84", "D85", "F6", "I2", "I2D")]
    lines = [
        ln("U3", SEMAGLUTIDE, quantity=3, days_supply=84),  # exactly at both limits
        ln("U4", SEMAGLUTIDE, quantity=4, days_supply=84),  # one unit over
        ln("U22", SEMAGLUTIDE, quantity=2, days_supply=28),  # 2 + 2 units on two lines
        ln("U22", SEMAGLUTIDE, quantity=2, days_supply=28),
        ln("D84", SEMAGLUTIDE, quantity=1, days_supply=84),
        ln("D85", SEMAGLUTIDE, quantity=1, days_supply=85),  # one day over
        ln("F6", METFORMIN, quantity=6),  # fallback 6 × 15 = 90 days: at the limit
        ln("I2", IBUPROFEN, quantity=2),  # fallback 2 × 10 = 20 days > 14
        ln("I2D", IBUPROFEN, quantity=2, days_supply=14),  # days_supply given wins
    ]
    assert flagged(tmp_path, "over_quantity", settlements, lines) == {
        ("H1", "U4"),
        ("H1", "U22"),
        ("H1", "D85"),
        ("H1", "I2"),
    }


def test_over_quantity_services_per_stay_day(tmp_path: Path) -> None:
    settlements = [
        st("C3"),
        st("C4"),
        st("B4", visit_type="inpatient", admit_time="2026-03-01T20:00:00",
           discharge_time="2026-03-05T08:00:00", settle_time="2026-03-05T09:00:00"),
        st("B5", visit_type="inpatient", admit_time="2026-03-01T20:00:00",
           discharge_time="2026-03-05T08:00:00", settle_time="2026-03-05T09:00:00"),
        st("B1", visit_type="inpatient", admit_time="2026-03-01T08:00:00",
           discharge_time="2026-03-01T20:00:00", settle_time="2026-03-01T21:00:00"),
        st("B2", visit_type="inpatient", admit_time="2026-03-01T08:00:00",
           discharge_time="2026-03-01T20:00:00", settle_time="2026-03-01T21:00:00"),
    ]  # fmt: skip
    lines = [
        ln("C3", CONSULTATION, quantity=3),  # max_per_day 3, one day
        ln("C4", CONSULTATION, quantity=2),
        ln("C4", CONSULTATION, quantity=2),
        ln("B4", BED_DAY, quantity=4),  # 4 stay days (by date) × 1
        ln("B5", BED_DAY, quantity=5),
        ln("B1", BED_DAY, quantity=1),  # same-day stay counts as 1 day
        ln("B2", BED_DAY, quantity=2),
    ]
    assert flagged(tmp_path, "over_quantity", settlements, lines) == {
        ("H1", "C4"),
        ("H1", "B5"),
        ("H1", "B2"),
    }


def test_indication_mismatch(tmp_path: Path) -> None:
    settlements = [
        st("OK", diagnosis_codes="I10.x00|E11.900"),
        st("BAD", diagnosis_codes="I10.x00"),
        st("NODX", site="P1", diagnosis_codes=""),
        st("ANY", diagnosis_codes="I10.x00"),
        st("L", diagnosis_codes="L40.000"),
    ]
    lines = [
        ln("OK", SEMAGLUTIDE),
        ln("BAD", SEMAGLUTIDE),
        ln("NODX", SEMAGLUTIDE, site="P1"),  # no diagnosis at all: not a mismatch
        ln("ANY", IBUPROFEN),  # no indications: any diagnosis
        ln("L", NICOTINAMIDE),  # a one-letter prefix
    ]
    assert flagged(tmp_path, "indication_mismatch", settlements, lines) == {("H1", "BAD")}


def test_interaction(tmp_path: Path) -> None:
    settlements = [st("AB"), st("BA"), st("A"), st("B")]
    lines = [
        ln("AB", WARFARIN),
        ln("AB", IBUPROFEN),
        ln("BA", IBUPROFEN),  # either order
        ln("BA", CONSULTATION),
        ln("BA", WARFARIN),
        ln("A", WARFARIN),  # the pair split over two settlements
        ln("B", IBUPROFEN),
    ]
    assert flagged(tmp_path, "interaction", settlements, lines) == {("H1", "AB"), ("H1", "BA")}


def test_duplicate_trace_code(tmp_path: Path) -> None:
    dup, twice = "1" * 20, "2" * 20
    settlements = [st("S1"), st("S1", site="P1"), st("S2"), st("S3")]
    lines = [
        ln("S1", METFORMIN, trace_code=dup),
        ln("S1", METFORMIN, site="P1", trace_code=dup),  # same id at another site: own row
        ln("S2", METFORMIN, trace_code="3" * 20),
        ln("S3", METFORMIN, trace_code=twice),
        ln("S3", METFORMIN, trace_code=twice),
        ln("S2", CONSULTATION),  # empty codes are never duplicates
        ln("S1", CONSULTATION),
    ]
    assert flagged(tmp_path, "duplicate_trace_code", settlements, lines) == {
        ("H1", "S1"),
        ("P1", "S1"),
        ("H1", "S3"),
    }


def test_cross_site_over_quantity(tmp_path: Path) -> None:
    t0 = "2026-03-01T09:00:00"
    p_yes, p_at, p_one_site, p_late = patient(10), patient(11), patient(12), patient(13)
    settlements = [
        # 60 + 31 = 91 days > 90 at two sites, 30 days apart exactly (inclusive)
        st("Y1", patient_id=p_yes, admit_time=t0),
        st("Y2", site="P1", patient_id=p_yes, admit_time=at(t0, days=30)),
        # exactly 90 days: at the limit
        st("A1", patient_id=p_at, admit_time=t0),
        st("A2", site="P1", patient_id=p_at, admit_time=at(t0, days=10)),
        # one site only
        st("O1", patient_id=p_one_site, admit_time=t0),
        st("O2", patient_id=p_one_site, admit_time=at(t0, days=10)),
        # 31 days apart by date: outside the window (30 days and a minute is inside: dates)
        st("L1", patient_id=p_late, admit_time=t0),
        st("L2", site="P1", patient_id=p_late, admit_time=at(t0, days=31, minutes=-1)),
    ]  # fmt: skip
    lines = [
        ln("Y1", SERTRALINE, days_supply=60),
        ln("Y2", SERTRALINE, site="P1", days_supply=31),
        ln("A1", SERTRALINE, days_supply=60),
        ln("A2", SERTRALINE, site="P1", days_supply=30),
        ln("O1", SERTRALINE, days_supply=60),
        ln("O2", SERTRALINE, days_supply=31),
        ln("L1", SERTRALINE, days_supply=60),
        ln("L2", SERTRALINE, site="P1", days_supply=31),
    ]
    assert flagged(tmp_path, "cross_site_over_quantity", settlements, lines) == {
        ("H1", "Y1"),
        ("P1", "Y2"),
    }


def test_cross_site_window_flags_every_settlement_in_it(tmp_path: Path) -> None:
    t0 = "2026-03-01T09:00:00"
    settlements = [
        st("W1", admit_time=t0),
        st("W2", site="P1", admit_time=at(t0, days=5), settle_time=at(t0, days=5)),
        st("W3", admit_time=at(t0, days=29), settle_time=at(t0, days=29)),
        st("W4", admit_time=at(t0, days=70), settle_time=at(t0, days=70)),  # far later
    ]
    lines = [
        ln("W1", SERTRALINE, days_supply=30),
        ln("W2", SERTRALINE, site="P1", quantity=1),  # fallback: 1 × 30 days
        ln("W3", SERTRALINE, days_supply=31),
        ln("W4", SERTRALINE, days_supply=90),
    ]
    assert flagged(tmp_path, "cross_site_over_quantity", settlements, lines) == {
        ("H1", "W1"),
        ("P1", "W2"),
        ("H1", "W3"),
    }


def test_monthly_pharmacy_spend(tmp_path: Path) -> None:
    p_at, p_below, p_months, p_visit = patient(20), patient(21), patient(22), patient(23)
    t1, t2 = "2026-03-02T10:00:00", "2026-03-30T10:00:00"
    settlements = [
        st("A1", site="P1", patient_id=p_at, total_amount="5000.00", settle_time=t1),
        st("A2", site="P2", patient_id=p_at, total_amount="3000.00", settle_time=t2),
        st("B1", site="P1", patient_id=p_below, total_amount="5000.00"),
        st("B2", site="P2", patient_id=p_below, total_amount="2999.99"),
        st("M1", site="P1", patient_id=p_months, total_amount="5000.00",
           admit_time="2026-03-31T23:30:00", settle_time="2026-03-31T23:50:00"),
        st("M2", site="P2", patient_id=p_months, total_amount="5000.00",
           admit_time="2026-03-31T23:50:00", settle_time="2026-04-01T00:10:00"),
        st("V1", site="P1", patient_id=p_visit, total_amount="5000.00"),
        st("V2", patient_id=p_visit, total_amount="5000.00"),  # a hospital visit: not counted
    ]  # fmt: skip
    assert flagged(tmp_path, "monthly_pharmacy_spend", settlements) == {("P1", "A1"), ("P2", "A2")}


def test_batch_prescribing(tmp_path: Path) -> None:
    t0 = "2026-03-02T10:00:00"
    settlements: list[dict[str, str]] = []
    lines: list[dict[str, str]] = []

    def group(prefix: str, offsets: list[int], code: str = SEMAGLUTIDE, doctor: str = "D9",
              same_patient: bool = False) -> None:  # fmt: skip
        for i, offset in enumerate(offsets):
            sid = f"{prefix}{i}"
            pid = patient(30) if same_patient else patient(31 + i)
            settlements.append(st(sid, patient_id=pid, doctor_id=doctor))
            lines.append(ln(sid, code, order_time=at(t0, seconds=offset)))

    group("YES", [0, 30, 60])  # 3 patients, max − min = 60 s exactly
    group("TWO", [0, 10], doctor="D8")  # only 2 patients
    group("WIDE", [0, 30, 61], doctor="D7")  # 61 s apart
    group("MET", [0, 1, 2], code=METFORMIN, doctor="D6")  # not monitored
    group("UNK", [0, 1, 2], doctor="UNKNOWN")  # not a person
    group("ONE", [0, 1, 2], doctor="D5", same_patient=True)  # one patient thrice
    assert flagged(tmp_path, "batch_prescribing", settlements, lines) == {
        ("H1", "YES0"),
        ("H1", "YES1"),
        ("H1", "YES2"),
    }


def test_split_admission(tmp_path: Path) -> None:
    def stay(
        sid: str, pid: int, admit: str, discharge: str, dx: str, site: str = "H1"
    ) -> dict[str, str]:
        return st(sid, site=site, patient_id=patient(pid), visit_type="inpatient",
                  admit_time=admit, discharge_time=discharge, settle_time=discharge,
                  diagnosis_codes=dx)  # fmt: skip

    d1 = "2026-03-05T10:00:00"
    settlements = [
        stay("A1", 40, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("A2", 40, at(d1, days=15), "2026-03-25T10:00:00", "I63.900|I10.x00"),  # 15 days
        stay("B1", 41, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("B2", 41, at(d1, days=16), "2026-03-25T10:00:00", "I63.900"),  # 16 days
        stay("C1", 42, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("C2", 42, at(d1, days=3), "2026-03-12T10:00:00", "I10.x00|I63.900"),  # other dx
        stay("D1", 43, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("D2", 43, at(d1, days=3), "2026-03-12T10:00:00", "I63.900", site="H2"),  # other site
        stay("E1", 44, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("E2", 44, d1, "2026-03-12T10:00:00", "I63.900"),  # gap exactly 0
        stay("F1", 45, "2026-03-01T08:00:00", d1, "I63.900"),
        stay("F2", 45, at(d1, days=3), "2026-03-12T10:00:00", "I63.901"),  # exact comparison
    ]
    settlements.append(st("G1", patient_id=patient(46), diagnosis_codes="I63.900"))  # outpatient
    settlements.append(stay("G2", 46, "2026-03-02T08:00:00", d1, "I63.900"))
    assert flagged(tmp_path, "split_admission", settlements) == {
        ("H1", "A1"),
        ("H1", "A2"),
        ("H1", "E1"),
        ("H1", "E2"),
    }


def test_prescriber_outlier(tmp_path: Path) -> None:
    # 21 doctors at 12.50 and one more at X: n = 22, X > 20·(X + 262.50)/22  ⇔  X > 2625.00
    def month(root: Path, big_quantity: int) -> set[tuple[str, str]]:
        settlements = [st(f"N{i}", doctor_id=f"D{i:03d}") for i in range(21)]
        lines = [ln(f"N{i}", METFORMIN, quantity=1) for i in range(21)]
        half = big_quantity // 2
        settlements += [
            st("BIG1", doctor_id="DBIG"),
            st("BIG2", site="H2", doctor_id="DBIG"),  # the same doctor at another site
            st("BIG3", doctor_id="DBIG"),  # another drug
            st("BIG4", doctor_id="DBIG", admit_time="2026-04-01T09:00:00",
               settle_time="2026-04-01T09:20:00"),  # another month
        ]  # fmt: skip
        lines += [
            ln("BIG1", METFORMIN, quantity=half),
            ln("BIG2", METFORMIN, site="H2", quantity=big_quantity - half),
            ln("BIG3", IBUPROFEN),
            ln("BIG4", METFORMIN, quantity=1, order_time="2026-04-01T09:05:00"),
        ]
        return flagged(root, "prescriber_outlier", settlements, lines)

    assert month(tmp_path / "at", 210) == set()  # 210 × 12.50 = 2625.00: at the limit
    assert month(tmp_path / "over", 211) == {("H1", "BIG1"), ("H2", "BIG2")}


def test_prescriber_outlier_ignores_unknown_doctor(tmp_path: Path) -> None:
    settlements = [st(f"N{i}") for i in range(2)]  # the same doctor D0000001 twice
    settlements += [st(f"U{i}", doctor_id="UNKNOWN") for i in range(30)]
    lines = [ln(s["settlement_id"], METFORMIN) for s in settlements]
    # 30 UNKNOWN "doctors" would make the mean tiny if they counted; they do not.
    assert flagged(tmp_path, "prescriber_outlier", settlements, lines) == set()


def test_pharmacist_multi_site(tmp_path: Path) -> None:
    t0 = "2026-03-03T10:00:00"
    settlements = [
        st("A1", site="P1", pharmacist_id="Y1", settle_time=t0),
        st("A2", site="P2", pharmacist_id="Y1", settle_time=at(t0, minutes=10)),  # inclusive
        st("B1", site="P1", pharmacist_id="Y2", settle_time=t0),
        st("B2", site="P2", pharmacist_id="Y2", settle_time=at(t0, minutes=10, seconds=1)),
        st("C1", site="P1", pharmacist_id="Y3", settle_time=t0),
        st("C2", site="P1", pharmacist_id="Y3", settle_time=at(t0, minutes=1)),  # one site
        st("D1", site="P1", pharmacist_id="", settle_time=t0),
        st("D2", site="P2", pharmacist_id="", settle_time=t0),  # no pharmacist
    ]
    assert flagged(tmp_path, "pharmacist_multi_site", settlements) == {("P1", "A1"), ("P2", "A2")}


def test_data_quality_doctor(tmp_path: Path) -> None:
    settlements = [
        st("UNK", doctor_id="UNKNOWN"),
        st("EMPTY", doctor_id=""),
        st("CLINIC", site="C1", site_type="clinic", doctor_id=""),
        st("PHARM", site="P1", doctor_id=""),
        st("PHARMUNK", site="P1", doctor_id="UNKNOWN"),
        st("OK", doctor_id="D0000001"),
    ]
    assert flagged(tmp_path, "data_quality", settlements) == {
        ("H1", "UNK"),
        ("H1", "EMPTY"),
        ("C1", "CLINIC"),
        ("P1", "PHARMUNK"),
    }


def test_malformed_rows_are_reported_and_left_out(tmp_path: Path) -> None:
    settlements = [
        st("OK", gender="M"),
        st("BAD", gender="M", birth_date="1980-02-30"),  # row 3: rejected
        st("LINE", gender="F", diagnosis_codes="I48.000"),
    ]
    lines = [
        ln("OK", CONSULTATION),
        ln("BAD", HYSTEROSCOPY),  # a line of a rejected settlement: rejected too
        ln("LINE", WARFARIN),
        ln("LINE", IBUPROFEN, amount="abc"),  # row 5: rejected, so no interaction
    ]
    malformed = [
        {"site": "H1", "file": "settlements.csv", "row": "3", "settlement_id": "BAD",
         "field": "birth_date"},
        {"site": "H1", "file": "lines.csv", "row": "5", "settlement_id": "LINE",
         "field": "quantity"},
    ]  # fmt: skip
    make(tmp_path, settlements, lines, malformed)
    flags = evaluate(tmp_path, KB)
    assert flags == {("data_quality", "H1", "BAD"), ("data_quality", "H1", "LINE")}
    assert_engine_agrees(tmp_path, KB)


def test_unlisted_unreadable_row_is_an_error(tmp_path: Path) -> None:
    make(tmp_path, [st("S1", birth_date="1980-02-30")])
    with pytest.raises(OracleDataError, match=r"settlements\.csv row 2"):
        evaluate(tmp_path, KB)


def test_settlement_ids_are_per_site(tmp_path: Path) -> None:
    settlements = [st("S1", gender="M"), st("S1", site="P1", gender="F")]
    lines = [ln("S1", HYSTEROSCOPY), ln("S1", HYSTEROSCOPY, site="P1")]
    assert flagged(tmp_path, "gender_conflict", settlements, lines) == {("H1", "S1")}
