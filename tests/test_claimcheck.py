"""PreCheck's per-claim rules agree with the rule engine on every stored settlement."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import duckdb
import pytest

from fedrisk.models.rules.claimcheck import CHECKS, Claim, ClaimLine, check_claim, decision
from fedrisk.models.rules.pack import load_rule_pack
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.auditlog import read_entries
from fedrisk.node.history import READS, load_history
from fedrisk.node.home import NodeHome
from fedrisk.synth import generate_dataset
from tests.screening import ingest_sites, screen_all

Pair = tuple[str, str]  # (rule_id, severity)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NodeHome]:
    root = tmp_path_factory.mktemp("claimcheck")
    generate_dataset(root / "data", sites=3, settlements=4_000, seed=11)
    return ingest_sites(root / "data", root / "nodes")


def _stored_claims(home: NodeHome) -> dict[str, Claim]:
    """Every stored settlement of ``home`` as a PreCheck claim (from the store's own rows)."""
    with duckdb.connect(str(home.store), read_only=True) as db:
        settlements = db.sql("SELECT * FROM settlements").to_arrow_table().to_pylist()
        lines = db.sql("SELECT * FROM lines").to_arrow_table().to_pylist()
    by_settlement: dict[str, list[ClaimLine]] = defaultdict(list)
    for row in lines:
        by_settlement[row["settlement_id"]].append(
            ClaimLine(
                row["line_no"],
                row["item_type"],
                row["item_code"],
                row["trace_code"],
                Decimal(row["quantity"]),
                row["days_supply"],
                row["order_time"],
                Decimal(row["unit_price"]),
                Decimal(row["amount"]),
            )
        )
    return {
        s["settlement_id"]: Claim(
            site_id=s["site_id"],
            settlement_id=s["settlement_id"],
            site_type=s["site_type"],
            patient=s["patient_pseudonym"],
            gender=s["gender"],
            age=s["age"],
            visit_type=s["visit_type"],
            admit_time=s["admit_time"],
            discharge_time=s["discharge_time"],
            diagnoses=tuple(s["diagnosis_codes"].split("|")) if s["diagnosis_codes"] else (),
            doctor=s["doctor_pseudonym"],
            doctor_status=s["doctor_status"],
            lines=tuple(by_settlement[s["settlement_id"]]),
            drg_code=s["drg_code"],
            total_amount=Decimal(s["total_amount"]),
            fund_paid=Decimal(s["fund_paid"]),
            settle_time=s["settle_time"],
        )
        for s in settlements
    }


def _rejected(home: NodeHome) -> set[str]:
    """Settlements named by a row refused at ingest: data_quality that no claim can show."""
    from fedrisk.node.ingest import read_rejects

    return {r.settlement_id for path in home.rejects.glob("*.jsonl") for r in read_rejects(path)}


def test_every_stored_settlement_gets_the_engines_hits(nodes: dict[str, NodeHome]) -> None:
    engine, _ = screen_all(nodes)
    pack = load_rule_pack(None)
    disagreements: list[tuple[str, str, set[str], set[str]]] = []
    checked = 0
    rules_hit: set[str] = set()
    for site, home in nodes.items():
        history = load_history(
            SiteAccess.open(home, Principal("pytest", "precheck"), "precheck")
        ).history
        kb = home.knowledge_base()
        rejected = _rejected(home)
        expected: dict[str, set[str]] = defaultdict(set)
        for rule_id, flag_site, settlement in engine:
            if flag_site == site and not (rule_id == "data_quality" and settlement in rejected):
                expected[settlement].add(rule_id)
        for settlement, claim in _stored_claims(home).items():
            got = {h.rule_id for h in check_claim(claim, history, kb, pack, context=False)}
            if settlement in rejected:
                got.discard("data_quality")
            checked += 1
            rules_hit |= got
            if got != expected.get(settlement, set()):
                disagreements.append((site, settlement, got, expected.get(settlement, set())))
    assert disagreements == [], disagreements[:10]
    assert checked > 10_000  # the comparison covered something real: every rule hit somewhere
    assert rules_hit == set(CHECKS), set(CHECKS) - rules_hit


def test_decision_is_the_most_severe_hit(nodes: dict[str, NodeHome]) -> None:
    pack = load_rule_pack(None)
    home = next(iter(nodes.values()))
    history = load_history(
        SiteAccess.open(home, Principal("pytest", "precheck"), "precheck")
    ).history
    kb = home.knowledge_base()
    seen = defaultdict(int)
    for claim in _stored_claims(home).values():
        hits = check_claim(claim, history, kb, pack)
        verdict = decision(hits)
        seen[verdict] += 1
        severities = {h.severity for h in hits}
        assert verdict == (
            "block" if "block" in severities else "warn" if "warn" in severities else "allow"
        )
    assert seen["allow"] and seen["block"] and seen["warn"]


def test_the_history_is_read_through_the_gate(nodes: dict[str, NodeHome]) -> None:
    home = next(iter(nodes.values()))
    load_history(SiteAccess.open(home, Principal("pytest", "precheck"), "precheck"))
    reads = [e for e in read_entries(home.audit) if e["purpose"] == "precheck"]
    assert {e["dataset"] for e in reads} == set(READS)
    assert all(e["decision"] == "allowed" and e["role"] == "precheck" for e in reads)


class _Spent:
    """A history in which the patient already spent ``amount`` at this pharmacy this month."""

    def __init__(self, amount: str) -> None:
        self.amount = Decimal(amount)

    def trace_settlements(self, trace_code: str, exclude: str) -> list[str]:
        return []

    def doctor_orders(self, doctor: str, item_code: str, exclude: str) -> list:  # type: ignore[type-arg]
        return []

    def stays(self, patient: str, diagnosis: str, exclude: str) -> list:  # type: ignore[type-arg]
        return []

    def month_spend(self, patient: str, month: str, exclude: str) -> tuple[Decimal, int]:
        return (self.amount, 2) if month == "2026-03" else (Decimal(0), 0)

    def cross_site_spend(self, patient: str, month: str) -> int:
        return 0

    def cross_site_supply(self, patient: str, item_code: str) -> list:  # type: ignore[type-arg]
        return []


@pytest.mark.parametrize(
    ("earlier", "total", "hit"),
    [
        ("7000.00", "999.99", False),
        ("7000.00", "1000.00", True),
        ("0", "8000.00", True),
    ],
)
def test_pharmacy_spend_at_this_site_alone_can_reach_the_monthly_limit(
    earlier: str, total: str, hit: bool
) -> None:
    from datetime import datetime

    from fedrisk.models.kb import load_kb

    claim = Claim(
        site_id="P1",
        settlement_id="S9",
        site_type="pharmacy",
        patient="p" * 32,
        gender="F",
        age=50,
        visit_type="pharmacy",
        admit_time=datetime(2026, 3, 5, 9),
        discharge_time=None,
        diagnoses=(),
        doctor=None,
        doctor_status="missing",
        lines=(),
        total_amount=Decimal(total),
        settle_time=datetime(2026, 3, 5, 9, 5),
    )
    pack = load_rule_pack(None)
    hits = {h.rule_id: h for h in check_claim(claim, _Spent(earlier), load_kb(None), pack)}
    assert ("monthly_pharmacy_spend" in hits) == hit
    assert "monthly_pharmacy_spend" not in {
        h.rule_id for h in check_claim(claim, _Spent(earlier), load_kb(None), pack, context=False)
    }
