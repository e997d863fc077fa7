"""The vectorised ingest (node/validate.py) and the plain per-row reference (bench/
reference_ingest.py, written from docs/validation.md alone) agree on every reject and count.

Cases: the contract's two sample sites; hand-made files with one row per defect listed in
docs/validation.md (plus wrong field counts, a BOM, quoted commas, extra columns), where both
must also equal the expected field written down here; and, once ``fedrisk.synth`` exists,
generated data of two seeds, whose rejects must be exactly the rows of ``malformed.csv``.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.reference_ingest import ReferenceResult, validate_files
from fedrisk.models.kb import KnowledgeBase, load_kb
from fedrisk.models.schema import (
    LABEL_COLUMNS,
    LINE_COLUMNS,
    SETTLEMENT_COLUMNS,
    national_id_check_digit,
)
from fedrisk.node.home import init_home
from fedrisk.node.ingest import IngestReport, ingest, read_rejects
from tests.conftest import SAMPLE, SAMPLE_SITES
from tests.nodes import operator

SITE = "H33010000"
KB = load_kb()
DRUG = next(iter(KB.drugs))
SERVICE = next(iter(KB.services))

Key = tuple[str, int, str, str]  # file, row, settlement_id, field


@dataclass(frozen=True)
class Outcome:
    """What one validator made of a batch: counts per file and the set of rejects."""

    counts: dict[str, tuple[int, int, int]]
    rejects: frozenset[Key]


def _node(tmp: Path, site_id: str, folder: Path, labels: bool) -> Outcome:
    home = init_home(tmp / f"home-{site_id}-{folder.name}", site_id)
    label_file = folder / "labels.csv" if labels else None
    report: IngestReport = ingest(
        operator(home, "ingest"), folder / "settlements.csv", folder / "lines.csv", label_file
    )
    assert report.rejects_path is not None
    rejects = frozenset(
        (r.file, r.row, r.settlement_id, r.field) for r in read_rejects(report.rejects_path)
    )
    counts = {f.file: (f.read, f.accepted, f.rejected) for f in report.files}
    return Outcome(counts, rejects)


def _reference(site_id: str, folder: Path, labels: bool, kb: KnowledgeBase = KB) -> Outcome:
    label_file = folder / "labels.csv" if labels else None
    result: ReferenceResult = validate_files(
        folder / "settlements.csv", folder / "lines.csv", label_file, site_id, kb
    )
    counts = {name: (c.read, c.accepted, c.rejected) for name, c in result.counts.items()}
    assert len(set(result.rejects)) == len(result.rejects)
    return Outcome(counts, frozenset(result.rejects))


def _agree(tmp: Path, site_id: str, folder: Path, labels: bool) -> Outcome:
    node = _node(tmp, site_id, folder, labels)
    reference = _reference(site_id, folder, labels)
    only_node = sorted(node.rejects - reference.rejects)
    only_reference = sorted(reference.rejects - node.rejects)
    assert not only_node and not only_reference, (
        f"rejects differ: node only {only_node}, reference only {only_reference}"
    )
    assert node.counts == reference.counts
    for read, accepted, rejected in node.counts.values():
        assert accepted + rejected == read
    return node


# --- the contract's sample sites --------------------------------------------------------------


@pytest.mark.parametrize("site_id", SAMPLE_SITES)
def test_sample_sites_agree(tmp_path: Path, site_id: str) -> None:
    folder = tmp_path / site_id
    shutil.copytree(SAMPLE / site_id, folder)
    outcome = _agree(tmp_path, site_id, folder, labels=False)
    assert sum(r for _, _, r in outcome.counts.values()) == len(outcome.rejects)


# --- hand-made edge cases: one row per defect of docs/validation.md ----------------------------

PATIENT = "11010119800517123" + national_id_check_digit("11010119800517123")
BAD_CHECK = PATIENT[:17] + ("0" if PATIENT[17] != "0" else "1")
BASE_SETTLEMENT = {
    "settlement_id": "",
    "site_id": SITE,
    "site_type": "hospital",
    "patient_id": PATIENT,
    "patient_name": "张三",
    "gender": "M",
    "birth_date": "1980-05-17",
    "insurance_type": "employee",
    "visit_type": "outpatient",
    "admit_time": "2026-03-01T09:00:00",
    "discharge_time": "",
    "diagnosis_codes": "E11.900",
    "drg_code": "",
    "doctor_id": "D0001",
    "pharmacist_id": "",
    "total_amount": "100.00",
    "fund_paid": "70.00",
    "settle_time": "2026-03-01T09:30:00",
}
INPATIENT = {
    "visit_type": "inpatient",
    "discharge_time": "2026-03-05T10:00:00",
    "settle_time": "2026-03-05T11:00:00",
}
AT_PHARMACY = {"site_type": "pharmacy", "visit_type": "pharmacy", "doctor_id": ""}

# (overrides, expected first failing field or None when the row is valid)
SETTLEMENT_CASES: list[tuple[dict[str, str], str | None]] = [
    ({}, None),
    ({"settlement_id": ""}, "settlement_id"),
    ({"settlement_id": "S_OK"}, "settlement_id"),  # duplicate of the first row
    ({"site_id": "H33010001"}, "site_id"),
    ({"site_type": "hospita"}, "site_type"),
    ({"patient_id": BAD_CHECK}, "patient_id"),
    ({"patient_id": PATIENT[:17]}, "patient_id"),
    ({"patient_id": PATIENT[:17] + "x"}, "patient_id"),
    ({"patient_id": "A" + PATIENT[1:]}, "patient_id"),
    ({"patient_name": ""}, None),
    ({"gender": "U"}, "gender"),
    ({"gender": "m"}, "gender"),
    ({"birth_date": "2026-02-30"}, "birth_date"),
    ({"birth_date": "1980-5-17"}, "birth_date"),
    ({"birth_date": "1980/05/17"}, "birth_date"),
    ({"birth_date": "0000-01-01"}, "birth_date"),  # there is no year 0
    ({"birth_date": "2026-03-02"}, "birth_date"),  # after the admission date
    ({"birth_date": "2026-03-01"}, None),  # born on the admission date
    ({"birth_date": "2026-03-02", "admit_time": "bad"}, "admit_time"),
    ({"insurance_type": "private"}, "insurance_type"),
    ({"visit_type": "emergency"}, "visit_type"),
    ({"visit_type": "pharmacy"}, "visit_type"),  # pharmacy visit at a hospital
    ({"site_type": "pharmacy"}, "visit_type"),  # a pharmacy site, an outpatient visit
    (AT_PHARMACY, None),
    ({**AT_PHARMACY, "diagnosis_codes": ""}, None),  # empty allowed for pharmacy visits
    ({"admit_time": "2026-03-01 09:00:00"}, "admit_time"),
    ({"admit_time": "2026-03-01T25:00:00"}, "admit_time"),
    ({"admit_time": "2026-03-01T23:59:60"}, "admit_time"),
    ({"admit_time": "2026-03-01"}, "admit_time"),
    (INPATIENT, None),
    ({**INPATIENT, "discharge_time": ""}, "discharge_time"),
    ({**INPATIENT, "discharge_time": "2026-02-30T10:00:00"}, "discharge_time"),
    ({**INPATIENT, "discharge_time": "2026-02-28T10:00:00"}, "discharge_time"),  # before admit
    ({**INPATIENT, "discharge_time": "2026-03-01T09:00:00"}, None),  # equal to admit
    ({"discharge_time": "2026-03-01T10:00:00"}, "discharge_time"),  # outpatient
    ({"diagnosis_codes": ""}, "diagnosis_codes"),
    ({"diagnosis_codes": "E11.900|I10.x00|A00"}, None),
    ({"diagnosis_codes": "e11.900"}, "diagnosis_codes"),
    ({"diagnosis_codes": "E11.900|"}, "diagnosis_codes"),
    ({"diagnosis_codes": "E11.900;I10"}, "diagnosis_codes"),
    ({"diagnosis_codes": "E1"}, "diagnosis_codes"),
    ({"drg_code": "ES11"}, None),
    ({"doctor_id": ""}, None),
    ({"doctor_id": "UNKNOWN"}, None),
    ({"total_amount": "100.001"}, "total_amount"),
    ({"total_amount": "-1.00"}, "total_amount"),
    ({"total_amount": ""}, "total_amount"),
    ({"total_amount": "1,000.00"}, "total_amount"),
    ({"total_amount": "100", "fund_paid": "0"}, None),
    ({"fund_paid": "100.01"}, "fund_paid"),
    ({"fund_paid": "100.00"}, None),
    ({"fund_paid": "abc"}, "fund_paid"),
    ({"settle_time": "2026-03-01T08:59:59"}, "settle_time"),  # before admit
    ({"settle_time": "2026-13-01T09:30:00"}, "settle_time"),
    ({"settle_time": "2026-03-01T09:00:00"}, None),
    ({"gender": "X", "fund_paid": "999.00"}, "gender"),  # the first failing field is reported
    ({"gender": " F ", "total_amount": " 100.00"}, None),  # surrounding spaces are stripped
]

BASE_LINE = {
    "settlement_id": "S_OK",
    "site_id": SITE,
    "line_no": "",
    "item_type": "drug",
    "item_code": DRUG,
    "item_name": "某药 some drug",
    "trace_code": "12345678901234567890",
    "quantity": "2",
    "unit_price": "10.50",
    "amount": "21.00",
    "days_supply": "7",
    "order_time": "2026-03-01T09:10:00",
}
SERVICE_LINE = {"item_type": "service", "item_code": SERVICE, "trace_code": "", "days_supply": ""}

LINE_CASES: list[tuple[dict[str, str], str | None]] = [
    ({}, None),
    ({"settlement_id": "S_NONE"}, "settlement_id"),  # no such settlement
    ({"settlement_id": "S_REJECTED"}, "settlement_id"),  # a settlement rejected in the batch
    ({"site_id": "P33010701"}, "site_id"),
    ({"line_no": "0"}, "line_no"),
    ({"line_no": "-1"}, "line_no"),
    ({"line_no": "1.0"}, "line_no"),
    ({"line_no": "x"}, "line_no"),
    ({"line_no": "1"}, "line_no"),  # duplicate of the first line of S_OK
    ({"line_no": "0001"}, "line_no"),  # the same integer again
    ({"item_type": "device"}, "item_type"),
    ({"item_code": "NOPE"}, "item_code"),
    ({"item_type": "service"}, "item_code"),  # a drug code billed as a service
    ({**SERVICE_LINE, "item_code": DRUG}, "item_code"),
    (SERVICE_LINE, None),
    ({**SERVICE_LINE, "item_type": "consumable"}, None),
    ({"item_name": "a, b, and c"}, None),  # quoted commas
    ({"item_name": ""}, None),
    ({"trace_code": ""}, None),
    ({"trace_code": "1234567890123456789"}, "trace_code"),
    ({"trace_code": "1234567890123456789A"}, "trace_code"),
    ({"quantity": "0", "amount": "0.00"}, "quantity"),
    ({"quantity": "0.000", "amount": "0.00"}, "quantity"),
    ({"quantity": "-2", "amount": "21.00"}, "quantity"),
    ({"quantity": "1.2345"}, "quantity"),
    ({"quantity": "abc"}, "quantity"),
    ({"quantity": "0.125", "unit_price": "8.00", "amount": "1.00"}, None),
    ({"unit_price": "10.555"}, "unit_price"),
    ({"unit_price": ""}, "unit_price"),
    ({"amount": "21.0"}, None),
    ({"amount": "21.01"}, None),  # off by exactly 0.01
    ({"amount": "20.99"}, None),
    ({"amount": "21.02"}, "amount"),
    ({"amount": "20.98"}, "amount"),
    ({"amount": "21.000"}, "amount"),
    ({"quantity": "0.333", "unit_price": "3.00", "amount": "1.00"}, None),
    ({"quantity": "1.001", "unit_price": "1.00", "amount": "1.01"}, None),  # off by 0.009
    ({"quantity": "1.001", "unit_price": "1.00", "amount": "0.99"}, "amount"),  # off by 0.011
    ({"quantity": "0.005", "unit_price": "1.00", "amount": "0.00"}, None),
    ({"days_supply": ""}, None),
    ({"days_supply": "0"}, "days_supply"),
    ({"days_supply": "1.5"}, "days_supply"),
    ({"days_supply": "-3"}, "days_supply"),
    ({"order_time": "2026-03-01T09:10"}, "order_time"),
    ({"order_time": "2026-02-29T09:10:00"}, "order_time"),  # 2026 is not a leap year
    ({"order_time": "2024-02-29T09:10:00"}, None),
    ({"line_no": "0", "order_time": "x"}, "line_no"),
]

BASE_LABEL = {"settlement_id": "S_OK", "site_id": SITE, "label": "0", "violation_type": ""}
# Without a settlement_id override, a label names the next accepted settlement of the batch.
LABEL_CASES: list[tuple[dict[str, str], str | None]] = [
    ({}, None),
    ({"settlement_id": "S_NONE"}, "settlement_id"),
    ({"settlement_id": "S_REJECTED"}, "settlement_id"),
    ({"site_id": "X1"}, "site_id"),
    ({"label": "2"}, "label"),
    ({"label": "yes"}, "label"),
    ({"label": "1", "violation_type": "other"}, None),
    ({"label": "1", "violation_type": "gender_conflict"}, None),
    ({"label": "1", "violation_type": "data_quality"}, None),
    ({"label": "1", "violation_type": "fraud"}, "violation_type"),
]
REJECTED = "S0003"  # the settlement of the site_id case


@dataclass
class Batch:
    """Hand-made contract files and the rejects they must produce."""

    folder: Path
    expected: set[Key]


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _edge_batch(folder: Path) -> Batch:
    """Every case above, one row each, plus rows with the wrong number of fields."""
    folder.mkdir(parents=True)
    expected: set[Key] = set()
    settlements: list[list[str]] = []
    accepted: list[str] = []
    for index, (overrides, field) in enumerate(SETTLEMENT_CASES):
        sid = "S_OK" if index == 0 else f"S{index:04d}"
        row = {**BASE_SETTLEMENT, "settlement_id": sid, **overrides}
        settlements.append([row[c] for c in SETTLEMENT_COLUMNS])
        if field is None:
            accepted.append(row["settlement_id"])
        else:
            expected.add(
                ("settlements.csv", len(settlements) + 1, row["settlement_id"].strip(), field)
            )
    short = [*settlements[0][:-1]]
    short[0] = "S_SHORT"
    settlements.append(short)
    expected.add(("settlements.csv", len(settlements) + 1, "S_SHORT", "row"))
    long = [*settlements[0], "extra"]
    long[0] = "S_LONG"
    settlements.append(long)
    expected.add(("settlements.csv", len(settlements) + 1, "S_LONG", "row"))

    lines: list[list[str]] = []
    for line_no, (overrides, field) in enumerate(LINE_CASES, start=1):
        row = {**BASE_LINE, "line_no": str(line_no), **overrides}
        if row["settlement_id"] == "S_REJECTED":
            row["settlement_id"] = REJECTED
        lines.append([row[c] for c in LINE_COLUMNS])
        if field is not None:
            expected.add(("lines.csv", len(lines) + 1, row["settlement_id"], field))
    for sid in accepted[1:]:  # one good line for every other accepted settlement
        lines.append([{**BASE_LINE, "settlement_id": sid, "line_no": "1"}[c] for c in LINE_COLUMNS])
    lines.append(["S_OK", SITE, "900"])
    expected.add(("lines.csv", len(lines) + 1, "S_OK", "row"))

    labels: list[list[str]] = []
    for index, (overrides, field) in enumerate(LABEL_CASES):
        row = {**BASE_LABEL, "settlement_id": accepted[index], **overrides}
        if row["settlement_id"] == "S_REJECTED":
            row["settlement_id"] = REJECTED
        labels.append([row[c] for c in LABEL_COLUMNS])
        if field is not None:
            expected.add(("labels.csv", len(labels) + 1, row["settlement_id"], field))
    labels.append([accepted[-1], SITE, "0", "", ""])
    expected.add(("labels.csv", len(labels) + 1, accepted[-1], "row"))

    (folder / "settlements.csv").write_text(
        _csv_text(SETTLEMENT_COLUMNS, settlements), encoding="utf-8"
    )
    (folder / "lines.csv").write_text(_csv_text(LINE_COLUMNS, lines), encoding="utf-8")
    (folder / "labels.csv").write_text(_csv_text(LABEL_COLUMNS, labels), encoding="utf-8")
    return Batch(folder, expected)


def test_edge_cases_agree_with_each_other_and_with_the_doc(tmp_path: Path) -> None:
    batch = _edge_batch(tmp_path / "edge")
    outcome = _agree(tmp_path, SITE, batch.folder, labels=True)
    assert set(outcome.rejects) == batch.expected
    assert outcome.counts["settlements"][0] == len(SETTLEMENT_CASES) + 2


def _rewrite(folder: Path, target: Path, change: str) -> None:
    """A copy of a batch with every file changed: ``bom``, ``crlf`` or ``extra`` columns."""
    target.mkdir()
    for name in ("settlements.csv", "lines.csv", "labels.csv"):
        text = (folder / name).read_text(encoding="utf-8")
        if change == "bom":
            (target / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        elif change == "crlf":
            (target / name).write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
        else:  # an extra column in the middle and one at the end, on rows of the right shape
            rows = list(csv.reader(io.StringIO(text)))
            width = len(rows[0])
            out = [
                [*r[:2], "remark, with comma", *r[2:], "his"] if len(r) == width else r
                for r in rows
            ]
            out[0][2], out[0][-1] = "remark", "exported_by"
            (target / name).write_text(_csv_text(out[0], out[1:]), encoding="utf-8")


@pytest.mark.parametrize("change", ["bom", "crlf", "extra"])
def test_bom_crlf_and_extra_columns_change_nothing(tmp_path: Path, change: str) -> None:
    batch = _edge_batch(tmp_path / "edge")
    changed = tmp_path / change
    _rewrite(batch.folder, changed, change)
    outcome = _agree(tmp_path, SITE, changed, labels=True)
    assert set(outcome.rejects) == batch.expected


# --- generated data -----------------------------------------------------------------------------

GENERATED = [(1, 3, 2000), (2, 3, 2000)]  # seed, sites, settlements per site


def _malformed(folder: Path) -> set[Key]:
    with (folder / "malformed.csv").open(newline="", encoding="utf-8") as handle:
        return {
            (r["file"], int(r["row"]), r["settlement_id"], r["field"])
            for r in csv.DictReader(handle)
        }


@pytest.mark.parametrize("case", GENERATED, ids=lambda c: f"seed{c[0]}-{c[1]}x{c[2]}")
def test_generated_data_agrees_and_rejects_exactly_the_malformed_rows(
    tmp_path: Path, case: tuple[int, int, int]
) -> None:
    try:
        from fedrisk.synth import generate_dataset
    except ImportError:
        pytest.skip("the synthetic generator (fedrisk.synth.generate_dataset) is not there yet")
    seed, sites, settlements = case
    out = tmp_path / "data"
    generate_dataset(out, sites=sites, settlements=settlements, seed=seed)
    folders = sorted(p for p in out.iterdir() if (p / "settlements.csv").is_file())
    assert len(folders) == sites
    for folder in folders:
        outcome = _agree(tmp_path, folder.name, folder, labels=True)
        malformed = _malformed(folder)
        missed = sorted(malformed - outcome.rejects)
        wrongly = sorted(outcome.rejects - malformed)
        assert not missed and not wrongly, (
            f"{folder.name}: malformed rows not rejected {missed[:10]}, "
            f"valid rows rejected {wrongly[:10]}"
        )


# --- small files: odd layouts that must agree, and the node's known departures from the doc -----


def _s(**overrides: str) -> list[str]:
    row = {**BASE_SETTLEMENT, "settlement_id": "S1", **overrides}
    return [row[c] for c in SETTLEMENT_COLUMNS]


def _l(**overrides: str) -> list[str]:
    row = {**BASE_LINE, "settlement_id": "S1", "line_no": "1", **overrides}
    return [row[c] for c in LINE_COLUMNS]


def _label(**overrides: str) -> list[str]:
    row = {**BASE_LABEL, "settlement_id": "S1", **overrides}
    return [row[c] for c in LABEL_COLUMNS]


# name -> (settlements.csv, lines.csv, labels.csv or None) as text
SMALL: dict[str, tuple[str, str, str | None]] = {
    "whitespace-only row": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]) + "   \n",
        _csv_text(LINE_COLUMNS, [_l()]),
        None,
    ),
    "newline inside quoted item_name": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l(item_name="片剂\n10mg"), _l(line_no="2"), _l(line_no="x")]),
        None,
    ),
    "CR line endings": (
        _csv_text(SETTLEMENT_COLUMNS, [_s(), _s(settlement_id="S2", gender="?")]).replace(
            "\n", "\r"
        ),
        _csv_text(LINE_COLUMNS, [_l(), _l(settlement_id="S2")]).replace("\n", "\r"),
        None,
    ),
    "tabs and full-width spaces around values": (
        _csv_text(SETTLEMENT_COLUMNS, [_s(gender="\tM\t", site_type="\u3000hospital")]),
        _csv_text(LINE_COLUMNS, [_l(quantity=" 2 ")]),
        None,
    ),
    "wrong-shape row, then a good one with its id": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()[:5], _s()]),
        _csv_text(LINE_COLUMNS, [_l()]),
        None,
    ),
    "quoted empty values": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]).replace(",,", ',"",'),
        _csv_text(LINE_COLUMNS, [_l(trace_code="")]).replace(",,", ',"",'),
        None,
    ),
}

# Cases where the node once departed from docs/validation.md (the doc or the node was mended);
# kept so that the departure cannot come back.
FORMER_DEPARTURES: dict[str, tuple[str, str, str | None, str]] = {
    "money with 13 integer digits": (
        _csv_text(SETTLEMENT_COLUMNS, [_s(total_amount="1234567890123.00")]),
        _csv_text(LINE_COLUMNS, [_l()]),
        None,
        "doc: money is 'digits with at most two decimals'; node (MONEY_PATTERN) caps at 12 digits",
    ),
    "line_no with 10 digits": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l(line_no="1234567890")]),
        None,
        "doc: 'an integer >= 1'; node (INTEGER_PATTERN) caps at 9 digits",
    ),
    "quantity with 10 integer digits": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l(quantity="1000000000", unit_price="0.00", amount="0.00")]),
        None,
        "doc: 'a decimal > 0 with at most three decimals'; node (QUANTITY_PATTERN) caps at 9",
    ),
    "amount off by exactly 0.01 at 8.4 million": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l(quantity="1", unit_price="8389402.87", amount="8389402.88")]),
        None,
        "doc: |amount - quantity x unit_price| <= 0.01; node computes it in float64 "
        "(error > its 1e-9 slack above ~8e6) and rejects amount",
    ),
    "two labels for one settlement": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l()]),
        _csv_text(LABEL_COLUMNS, [_label(), _label(label="1", violation_type="other")]),
        "doc lists no duplicate-label check; node rejects the second label (settlement_id)",
    ),
    "wrong-shape row when settlement_id is not the first column": (
        "remark,"
        + _csv_text(SETTLEMENT_COLUMNS, [])  # header
        + "r,"
        + ",".join(_s())
        + "\n"
        + "r,S2,H33010000\n",
        _csv_text(LINE_COLUMNS, [_l()]),
        None,
        "node reports the row's first field as its settlement_id (here 'r'; with patient_id "
        "first, a raw national ID lands in rejects/*.jsonl), not the settlement_id column",
    ),
    "wrong-shape row after a blank line": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l()]) + "\nS9,x\n",
        None,
        "node numbers a wrong-shape row by physical line (4), every other row by record (3); "
        "the reference numbers records, as the node does for value rejects",
    ),
    "quoted line break, then a wrong-shape row, then a bad value": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]),
        _csv_text(LINE_COLUMNS, [_l(item_name="a\nb")])
        + "S9,x\n"
        + _csv_text(LINE_COLUMNS, [_l(line_no="x")]).split("\n", 1)[1],
        None,
        "node swaps the rows: S9 (record 3, line 4) reported at row 4, the line_no=x row "
        "(record 4, line 5) at row 3 -- wrong under either way of counting",
    ),
    "header names with surrounding spaces": (
        _csv_text(SETTLEMENT_COLUMNS, [_s()]).replace("site_id,", " site_id ,", 1),
        _csv_text(LINE_COLUMNS, [_l()]),
        None,
        "node checks stripped header names but reads with exact ones: raw ArrowKeyError "
        "instead of ingesting (or refusing the file with a message naming the column)",
    ),
}


def _write_small(folder: Path, files: tuple[str, str, str | None]) -> bool:
    folder.mkdir()
    settlements, lines, labels = files
    (folder / "settlements.csv").write_text(settlements, encoding="utf-8", newline="")
    (folder / "lines.csv").write_text(lines, encoding="utf-8", newline="")
    if labels is not None:
        (folder / "labels.csv").write_text(labels, encoding="utf-8", newline="")
    return labels is not None


@pytest.mark.parametrize("name", SMALL)
def test_odd_layouts_agree(tmp_path: Path, name: str) -> None:
    labels = _write_small(tmp_path / "batch", SMALL[name])
    _agree(tmp_path, SITE, tmp_path / "batch", labels)


@pytest.mark.parametrize("name", FORMER_DEPARTURES)
def test_former_departures_now_agree(tmp_path: Path, name: str) -> None:
    settlements, lines, labels, _ = FORMER_DEPARTURES[name]
    has_labels = _write_small(tmp_path / "batch", (settlements, lines, labels))
    _agree(tmp_path, SITE, tmp_path / "batch", has_labels)
