"""A plain per-row evaluation of the single-site rules: the baseline for ``bench/screen.py``.

It implements the 9 single-site rules of docs/rules.md straight from the document over ONE node
home: the store's rows are read with DuckDB ``fetchall()`` into Python tuples (SQL only selects
rows; every rule is a loop with dicts and sets), and the rejects files with ``json``. It shares
no code with ``fedrisk.node.screen``; bench/screen.py compares the two and times them.

Conventions of docs/rules.md as the store holds them: age is the stored ``age`` column (completed
years at admission), a doctor is ``(site_id, doctor_pseudonym)`` with ``doctor_status = 'ok'``,
a patient is ``patient_pseudonym``, the principal diagnosis is ``principal_diagnosis``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import duckdb

from fedrisk.models.kb import Drug, KnowledgeBase, Service
from fedrisk.models.rules.pack import RulePack, load_rule_pack
from fedrisk.node.home import NodeHome

Flag = tuple[str, str, str]
"""``(rule_id, site_id, settlement_id)``."""

Key = tuple[str, str]
"""``(site_id, settlement_id)``."""

SINGLE_SITE_RULES = (
    "gender_conflict",
    "age_conflict",
    "over_quantity",
    "indication_mismatch",
    "interaction",
    "duplicate_trace_code",
    "batch_prescribing",
    "split_admission",
    "data_quality",
)

# A reject naming no settlement of the store: "no such settlement" names an id that does not
# exist, and "" / "(withheld)" are no ids at all (docs/validation.md).
NO_SUCH_SETTLEMENT = "no such settlement"
NOT_AN_ID = ("", "(withheld)")

_SETTLEMENTS_SQL = """
SELECT site_id, settlement_id, site_type, patient_pseudonym, gender, age, visit_type,
       admit_time, discharge_time, diagnosis_codes, principal_diagnosis, doctor_pseudonym,
       doctor_status
FROM settlements
"""

_BATCHES_SQL = "SELECT batch_id FROM batches ORDER BY batch_id"

_LINES_SQL = """
SELECT site_id, settlement_id, item_type, item_code, trace_code, quantity, days_supply,
       order_time
FROM lines
"""


class Settlement(NamedTuple):
    """One stored settlement, with the fields the single-site rules read."""

    site_id: str
    settlement_id: str
    site_type: str
    patient: str
    gender: str
    age: int
    visit_type: str
    admit_time: datetime
    discharge_time: datetime | None
    diagnosis_codes: str
    principal_diagnosis: str | None
    doctor: str | None
    doctor_status: str


class Line(NamedTuple):
    """One stored fee line, with the fields the single-site rules read."""

    key: Key  # of its settlement
    item_type: str
    item_code: str
    trace_code: str | None
    quantity: Decimal
    days_supply: int | None
    order_time: datetime


@dataclass
class NodeData:
    """A node's stored rows, keyed for the rules, and the rejects of its batches."""

    settlements: dict[Key, Settlement] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    diagnoses: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    rejects: list[dict[str, object]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading the node home
# --------------------------------------------------------------------------------------------


def read_node(home: NodeHome) -> NodeData:
    """Every settlement and fee line of the store, and every reject of the home's batches."""
    data = NodeData()
    with duckdb.connect(str(home.store), read_only=True) as db:
        for row in db.execute(_SETTLEMENTS_SQL).fetchall():
            s = Settlement._make(row)
            key = (s.site_id, s.settlement_id)
            data.settlements[key] = s
            data.diagnoses[key] = tuple(c for c in s.diagnosis_codes.split("|") if c)
        lines = db.execute(_LINES_SQL).fetchall()
        data.lines = [Line((site, sid), *rest) for site, sid, *rest in lines]
        batches = [batch_id for (batch_id,) in db.execute(_BATCHES_SQL).fetchall()]
    data.rejects = list(read_rejects(home.rejects, batches))
    return data


def read_rejects(folder: Path, batches: Iterable[str]) -> Iterator[dict[str, object]]:
    """The reject records of the given stored batches (``<folder>/<batch_id>.jsonl``).

    Only stored batches count: ingest writes a batch's rejects just before its store commit,
    so a file may exist for a batch that never committed.
    """
    for batch_id in batches:
        path = folder / f"{batch_id}.jsonl"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as handle:
            for text in handle:
                if text.strip():
                    yield json.loads(text)


# --------------------------------------------------------------------------------------------
# Conventions of docs/rules.md
# --------------------------------------------------------------------------------------------


def item_of(kb: KnowledgeBase, line: Line) -> Drug | Service | None:
    """The KB entry of a line: drugs.csv for ``drug``, services.csv for service/consumable."""
    if line.item_type == "drug":
        return kb.drugs.get(line.item_code)
    return kb.services.get(line.item_code)


def stay_days(s: Settlement) -> int:
    """Inpatient: discharge date − admit date in days, at least 1; any other visit: 1."""
    if s.visit_type == "inpatient" and s.discharge_time is not None:
        return max(1, (s.discharge_time.date() - s.admit_time.date()).days)
    return 1


def days_of_supply(line: Line, drug: Drug) -> Decimal:
    """``days_supply`` when given, otherwise ``quantity × days_per_unit``."""
    if line.days_supply is not None:
        return Decimal(line.days_supply)
    return line.quantity * drug.days_per_unit


# --------------------------------------------------------------------------------------------
# The rules, one function each; each returns the settlement keys it flags
# --------------------------------------------------------------------------------------------


def gender_conflict(data: NodeData, kb: KnowledgeBase) -> set[Key]:
    """A line whose item has a KB ``gender`` different from the settlement's ``gender``."""
    flagged: set[Key] = set()
    for line in data.lines:
        item = item_of(kb, line)
        if item is None or item.gender is None:
            continue
        key = line.key
        if item.gender != data.settlements[key].gender:
            flagged.add(key)
    return flagged


def age_conflict(data: NodeData, kb: KnowledgeBase) -> set[Key]:
    """A line whose item has ``min_age`` and age < min_age, or ``max_age`` and age > max_age."""
    flagged: set[Key] = set()
    for line in data.lines:
        item = item_of(kb, line)
        if item is None or (item.min_age is None and item.max_age is None):
            continue
        key = line.key
        age = data.settlements[key].age
        too_young = item.min_age is not None and age < item.min_age
        too_old = item.max_age is not None and age > item.max_age
        if too_young or too_old:
            flagged.add(key)
    return flagged


def over_quantity(data: NodeData, kb: KnowledgeBase) -> set[Key]:
    """Per (settlement, item_code), units or days of supply above the catalogue limit.

    Drugs: Σ quantity > ``max_units`` or Σ days of supply > ``max_days_supply``. Services (any
    line whose code is in services.csv): Σ quantity > ``max_per_day`` × stay days.
    """
    units: dict[tuple[Key, str], Decimal] = defaultdict(Decimal)
    supply: dict[tuple[Key, str], Decimal] = defaultdict(Decimal)
    for line in data.lines:
        group = (line.key, line.item_code)
        units[group] += line.quantity
        if line.item_type == "drug":
            drug = kb.drugs.get(line.item_code)
            if drug is not None:
                supply[group] += days_of_supply(line, drug)
    flagged: set[Key] = set()
    for group, quantity in units.items():
        key, code = group
        drug = kb.drugs.get(code)
        if drug is not None:
            if quantity > drug.max_units or supply[group] > drug.max_days_supply:
                flagged.add(key)
            continue
        service = kb.services.get(code)
        if service is not None and quantity > service.max_per_day * stay_days(
            data.settlements[key]
        ):
            flagged.add(key)
    return flagged


def indication_mismatch(data: NodeData, kb: KnowledgeBase) -> set[Key]:
    """A drug with indications while the settlement has diagnoses and none starts with one."""
    flagged: set[Key] = set()
    for line in data.lines:
        if line.item_type != "drug":
            continue
        drug = kb.drugs.get(line.item_code)
        if drug is None or not drug.indications:
            continue
        key = line.key
        diagnoses = data.diagnoses[key]
        if diagnoses and not any(code.startswith(drug.indications) for code in diagnoses):
            flagged.add(key)
    return flagged


def interaction(data: NodeData, kb: KnowledgeBase) -> set[Key]:
    """Two drug lines of one settlement whose codes form a pair of interactions.csv."""
    partners: dict[str, set[str]] = defaultdict(set)
    for pair in kb.interactions:
        partners[pair.drug_a].add(pair.drug_b)
        partners[pair.drug_b].add(pair.drug_a)
    drugs_of: dict[Key, list[str]] = defaultdict(list)
    for line in data.lines:
        if line.item_type == "drug":
            drugs_of[line.key].append(line.item_code)
    flagged: set[Key] = set()
    for key, codes in drugs_of.items():
        seen: set[str] = set()
        for code in codes:
            # Each line is paired with every earlier one (either order, and a drug listed as
            # its own partner needs two lines of it).
            if not partners.get(code, set()).isdisjoint(seen):
                flagged.add(key)
                break
            seen.add(code)
    return flagged


def duplicate_trace_code(data: NodeData) -> set[Key]:
    """A non-empty ``trace_code`` on more than one line of the node."""
    counts = Counter(line.trace_code for line in data.lines if line.trace_code)
    return {line.key for line in data.lines if line.trace_code and counts[line.trace_code] > 1}


def batch_prescribing(
    data: NodeData, kb: KnowledgeBase, min_patients: int, window: timedelta
) -> set[Key]:
    """One doctor, one monitored drug, ≥ ``min_patients`` patients with order_times in a window.

    A doctor is ``(site_id, doctor_pseudonym)`` of a settlement with ``doctor_status = 'ok'``.
    For every order as the earliest, its group is every order of that doctor and drug at most
    ``window`` later; a group with enough different patients flags all its settlements.
    """
    orders: dict[tuple[str, str, str], list[tuple[datetime, str, Key]]] = defaultdict(list)
    for line in data.lines:
        if line.item_type != "drug":
            continue
        drug = kb.drugs.get(line.item_code)
        if drug is None or not drug.monitored:
            continue
        key = line.key
        s = data.settlements[key]
        if s.doctor_status == "ok" and s.doctor is not None:
            orders[(s.site_id, s.doctor, drug.code)].append((line.order_time, s.patient, key))
    flagged: set[Key] = set()
    for events in orders.values():
        events.sort()
        end = 0
        for start, (first, _, _) in enumerate(events):
            end = max(end, start)
            while end < len(events) and events[end][0] - first <= window:
                end += 1
            group = events[start:end]
            if len({patient for _, patient, _ in group}) >= min_patients:
                flagged.update(key for _, _, key in group)
    return flagged


def split_admission(data: NodeData, window: timedelta) -> set[Key]:
    """Two inpatient stays, one patient, one site, same principal diagnosis, gap 0..window.

    The gap is the later ``admit_time`` − the earlier ``discharge_time``; both stays flagged.
    """
    stays: dict[tuple[str, str, str], list[Settlement]] = defaultdict(list)
    for s in data.settlements.values():
        if (
            s.visit_type == "inpatient"
            and s.discharge_time is not None
            and s.principal_diagnosis is not None
        ):
            stays[(s.patient, s.site_id, s.principal_diagnosis)].append(s)
    flagged: set[Key] = set()
    zero = timedelta(0)
    for group in stays.values():
        if len(group) < 2:
            continue
        for earlier in group:
            assert earlier.discharge_time is not None
            for later in group:
                if later is earlier:
                    continue
                if zero <= later.admit_time - earlier.discharge_time <= window:
                    flagged.add((earlier.site_id, earlier.settlement_id))
                    flagged.add((later.site_id, later.settlement_id))
    return flagged


def data_quality(data: NodeData, site_id: str) -> set[Key]:
    """Settlements named by a reject, and accepted ones without a real doctor.

    A reject counts unless it names no settlement (``no such settlement``, an empty or withheld
    id). ``doctor_status`` ``unknown`` anywhere, or ``missing`` at a hospital or clinic.
    """
    flagged: set[Key] = set()
    for reject in data.rejects:
        sid = str(reject.get("settlement_id") or "")
        if sid not in NOT_AN_ID and reject.get("reason") != NO_SUCH_SETTLEMENT:
            flagged.add((site_id, sid))
    for key, s in data.settlements.items():
        status = s.doctor_status
        if status == "unknown" or (status == "missing" and s.site_type != "pharmacy"):
            flagged.add(key)
    return flagged


# --------------------------------------------------------------------------------------------
# All rules of one node
# --------------------------------------------------------------------------------------------


def evaluate_node(
    data: NodeData, kb: KnowledgeBase, pack: RulePack, site_id: str
) -> dict[str, set[Key]]:
    """The settlement keys each enabled single-site rule flags, keyed by rule id."""
    rules = pack.rules
    batch = rules["batch_prescribing"].params
    split = rules["split_admission"].params
    evaluators = {
        "gender_conflict": lambda: gender_conflict(data, kb),
        "age_conflict": lambda: age_conflict(data, kb),
        "over_quantity": lambda: over_quantity(data, kb),
        "indication_mismatch": lambda: indication_mismatch(data, kb),
        "interaction": lambda: interaction(data, kb),
        "duplicate_trace_code": lambda: duplicate_trace_code(data),
        "batch_prescribing": lambda: batch_prescribing(
            data,
            kb,
            int(batch["min_patients"]),
            timedelta(seconds=int(batch["window_seconds"])),
        ),
        "split_admission": lambda: split_admission(data, timedelta(days=int(split["window_days"]))),
        "data_quality": lambda: data_quality(data, site_id),
    }
    return {rule: run() for rule, run in evaluators.items() if rules[rule].enabled}


def reference_flags(home: NodeHome, kb: KnowledgeBase, pack: RulePack | None = None) -> set[Flag]:
    """Every ``(rule_id, site_id, settlement_id)`` the single-site rules flag at one node home.

    ``pack`` ``None`` takes the rule pack shipped with fedrisk.
    """
    pack = pack if pack is not None else load_rule_pack(None)
    data = read_node(home)
    return as_flags(evaluate_node(data, kb, pack, home.site_id))


def as_flags(results: dict[str, set[Key]]) -> set[Flag]:
    """Rule results as ``(rule_id, site_id, settlement_id)`` triples."""
    return {(rule, site, sid) for rule, keys in results.items() for site, sid in keys}
