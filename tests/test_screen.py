"""Screening a node: the flags file's format and evidence, and the settle-date window."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from fedrisk.models.kb import SEVERITIES, load_kb
from fedrisk.models.rules.pack import load_rule_pack
from fedrisk.node.screen import screen_node
from tests.nodes import operator
from tests.screening import ingest_sites, read_flags
from tests.test_oracle_rules import HYSTEROSCOPY, SEMAGLUTIDE, ln, make, st

FLAG_KEYS = [
    "site_id",
    "settlement_id",
    "rule_id",
    "score",
    "severity",
    "evidence",
    "kb_version",
    "rule_pack_version",
]


def _data(root: Path) -> Path:
    settlements = [
        st("JAN", gender="M", admit_time="2026-01-31T09:00:00", settle_time="2026-01-31T23:59:59"),
        st("FEB", gender="M", admit_time="2026-02-01T00:00:00"),
        st("MAR", gender="M", admit_time="2026-03-01T08:00:00"),
        st("BAD", birth_date="1980-02-30", settle_time="2026-01-15T10:00:00"),
    ]
    lines = [ln(s["settlement_id"], HYSTEROSCOPY) for s in settlements]
    lines.append(ln("FEB", SEMAGLUTIDE, quantity=4))
    return make(root / "data", settlements, lines)


def test_flags_follow_the_contract_and_name_item_restriction_value(tmp_path: Path) -> None:
    home = ingest_sites(_data(tmp_path), tmp_path / "homes")["H1"]
    report = screen_node(operator(home, "screening"), tmp_path / "flags.jsonl")
    flags = read_flags(report.out)
    assert all(list(f) == FLAG_KEYS for f in flags)
    assert all(0 <= float(str(f["score"])) <= 1 and f["severity"] in SEVERITIES for f in flags)
    assert {f["kb_version"] for f in flags} == {load_kb().version}
    assert {f["rule_pack_version"] for f in flags} == {load_rule_pack().version}
    gender = next(f for f in flags if f["rule_id"] == "gender_conflict")
    assert gender["severity"] == "block"
    assert gender["evidence"] == {
        "line_no": 1,
        "item_code": HYSTEROSCOPY,
        "item_name": load_kb().services[HYSTEROSCOPY].name,
        "restriction": "gender=F",
        "patient_gender": "M",
    }
    over = next(f for f in flags if f["rule_id"] == "over_quantity")
    assert over["evidence"]["restriction"] == "max_units=3"  # type: ignore[index]
    assert float(over["evidence"]["value"]) == 4  # type: ignore[index]
    bad = next(f for f in flags if f["settlement_id"] == "BAD")
    assert bad["rule_id"] == "data_quality"
    assert bad["evidence"] == {  # its own refused row, not its refused line
        "file": "settlements.csv",
        "row": 5,
        "field": "birth_date",
        "reason": "not a real date YYYY-MM-DD",
    }
    assert report.counts == {
        rule: sum(1 for f in flags if f["rule_id"] == rule) for rule in report.counts
    }


def test_window_keeps_settlements_settled_in_it(tmp_path: Path) -> None:
    home = ingest_sites(_data(tmp_path), tmp_path / "homes")["H1"]

    def flagged(start: date | None, end: date | None) -> set[tuple[str, str]]:
        report = screen_node(operator(home, "screening"), tmp_path / "w.jsonl", start, end)
        return {(str(f["rule_id"]), str(f["settlement_id"])) for f in read_flags(report.out)}

    everything = flagged(None, None)
    assert ("gender_conflict", "JAN") in everything and ("gender_conflict", "MAR") in everything
    february = flagged(date(2026, 2, 1), date(2026, 2, 28))
    # a settlement refused at ingest has no settle time to trust: it is reported in any window
    assert february == {
        ("gender_conflict", "FEB"),
        ("over_quantity", "FEB"),
        ("data_quality", "BAD"),
    }
    assert ("gender_conflict", "JAN") in flagged(None, date(2026, 1, 31))
    assert ("gender_conflict", "JAN") not in flagged(date(2026, 2, 1), None)
