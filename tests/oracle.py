"""An independent, row-by-row oracle for the 13 rules of docs/rules.md.

This module is the "independent straightforward check" of the rule library: it reads a data
directory laid out as ``<data_dir>/<site_id>/{settlements,lines,labels,malformed}.csv`` with the
``csv`` module, and evaluates every rule of docs/rules.md in plain Python, one function per rule.
It shares no code with the synthetic data generator or the rule engine; it only uses the contract
column names (``fedrisk.models.schema``) and the knowledge base loader (``fedrisk.models.kb``).

Contract-breaking rows are not re-validated here: ``<site>/malformed.csv`` (columns ``file``,
``row``, ``settlement_id``, ``field``) lists them, with ``row`` counted as in docs/validation.md
(the header is row 1). Those rows are left out of every rule, and so are the lines of a
settlement that was not accepted; each settlement id they name is reported as ``data_quality``.

Resolutions of points docs/rules.md leaves open (each is also noted at its rule):

- Times are compared as full datetimes (``admit_time``, ``discharge_time``, ``order_time``,
  ``settle_time``), not as dates, except where the rule says "date" (stay days, age, the
  ``cross_site_over_quantity`` window).
- A settlement is identified by ``(site_id, settlement_id)``; the site id is the folder name.
- A patient is identified by ``patient_id`` and a pharmacist by ``pharmacist_id`` across sites.
- ``batch_prescribing`` is evaluated per site (it is not one of the cross-site rules); a doctor
  there is ``(site_id, doctor_id)``. ``prescriber_outlier`` is federation-wide and identifies a
  doctor by ``doctor_id`` alone.
- The ``over_quantity`` service limit applies to every line whose item comes from
  ``services.csv`` (item types ``service`` and ``consumable``).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from fedrisk.models.kb import Drug, KnowledgeBase, Service
from fedrisk.models.schema import DATE_FORMAT, DATETIME_FORMAT, UNKNOWN_DOCTOR

Flag = tuple[str, str, str]
"""One result of the oracle: ``(rule_id, site_id, settlement_id)``."""

SettlementKey = tuple[str, str]
"""``(site_id, settlement_id)``: a settlement is unique within its site only."""

# Default parameters of the rule pack (docs/rules.md, in italics there).
CROSS_SITE_WINDOW = timedelta(days=30)
MONTHLY_PHARMACY_LIMIT = Decimal("8000.00")
BATCH_MIN_PATIENTS = 3
BATCH_WINDOW = timedelta(seconds=60)
SPLIT_ADMISSION_WINDOW = timedelta(days=15)
PRESCRIBER_FACTOR = 20
PHARMACIST_WINDOW = timedelta(minutes=10)


# Columns of <site>/malformed.csv, the generator's list of rows ingest must reject.
MALFORMED_COLUMNS = ("file", "row", "settlement_id", "field")


class OracleDataError(ValueError):
    """A row that malformed.csv does not list, yet cannot be read as the contract says."""


@dataclass(frozen=True)
class Settlement:
    """One accepted row of settlements.csv, with the fields the rules use, parsed."""

    site_id: str
    settlement_id: str
    site_type: str
    patient_id: str
    gender: str
    birth_date: date
    visit_type: str
    admit_time: datetime
    discharge_time: datetime | None
    diagnosis_codes: tuple[str, ...]
    doctor_id: str
    pharmacist_id: str
    total_amount: Decimal
    settle_time: datetime

    @property
    def key(self) -> SettlementKey:
        """The settlement's identity across the federation."""
        return (self.site_id, self.settlement_id)


@dataclass(frozen=True)
class Line:
    """One accepted row of lines.csv whose settlement was accepted too."""

    site_id: str
    settlement_id: str
    line_no: int
    item_type: str
    item_code: str
    trace_code: str
    quantity: Decimal
    amount: Decimal
    days_supply: int | None
    order_time: datetime

    @property
    def settlement_key(self) -> SettlementKey:
        """The key of the settlement the line belongs to."""
        return (self.site_id, self.settlement_id)


@dataclass
class Dataset:
    """Everything the rules read: accepted settlements and lines, and the rejected ids."""

    settlements: dict[SettlementKey, Settlement] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    lines_of: dict[SettlementKey, list[Line]] = field(default_factory=lambda: defaultdict(list))
    rejected: set[SettlementKey] = field(default_factory=set)
    """Settlements named by a row of malformed.csv (any file)."""


# --------------------------------------------------------------------------------------------
# Reading the data directory
# --------------------------------------------------------------------------------------------


def site_dirs(data_dir: Path) -> list[Path]:
    """Every site folder of a data directory (a sub-folder holding settlements.csv), sorted."""
    return sorted(p for p in Path(data_dir).iterdir() if (p / "settlements.csv").is_file())


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The data rows of a CSV file as (row number, stripped values); the header is row 1."""
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield number, {k: (v or "").strip() for k, v in row.items() if k is not None}


def malformed_rows(site_dir: Path) -> tuple[set[tuple[str, int]], set[str]]:
    """The (file, row) pairs that malformed.csv lists, and the settlement ids they name."""
    rows: set[tuple[str, int]] = set()
    ids: set[str] = set()
    for _, row in read_rows(site_dir / "malformed.csv"):
        rows.add((row["file"], int(row["row"])))
        if row["settlement_id"]:
            ids.add(row["settlement_id"])
    return rows, ids


def _datetime(text: str) -> datetime:
    return datetime.strptime(text, DATETIME_FORMAT)


def _settlement(site_id: str, row: dict[str, str]) -> Settlement:
    discharge = row["discharge_time"]
    return Settlement(
        site_id=site_id,
        settlement_id=row["settlement_id"],
        site_type=row["site_type"],
        patient_id=row["patient_id"],
        gender=row["gender"],
        birth_date=datetime.strptime(row["birth_date"], DATE_FORMAT).date(),
        visit_type=row["visit_type"],
        admit_time=_datetime(row["admit_time"]),
        discharge_time=_datetime(discharge) if discharge else None,
        diagnosis_codes=tuple(c.strip() for c in row["diagnosis_codes"].split("|") if c.strip()),
        doctor_id=row["doctor_id"],
        pharmacist_id=row["pharmacist_id"],
        total_amount=Decimal(row["total_amount"]),
        settle_time=_datetime(row["settle_time"]),
    )


def _line(site_id: str, row: dict[str, str]) -> Line:
    return Line(
        site_id=site_id,
        settlement_id=row["settlement_id"],
        line_no=int(row["line_no"]),
        item_type=row["item_type"],
        item_code=row["item_code"],
        trace_code=row["trace_code"],
        quantity=Decimal(row["quantity"]),
        amount=Decimal(row["amount"]),
        days_supply=int(row["days_supply"]) if row["days_supply"] else None,
        order_time=_datetime(row["order_time"]),
    )


def load(data_dir: Path, kb: KnowledgeBase) -> Dataset:
    """Read every site folder, leaving out the rows malformed.csv lists.

    A line is kept only when its own row is not listed and its settlement was accepted (a line
    of a rejected or unknown settlement is rejected at ingest, docs/validation.md). Raises
    ``OracleDataError`` for an unlisted row that cannot be parsed or names an item the KB lacks.
    """
    data = Dataset()
    for folder in site_dirs(data_dir):
        site_id = folder.name
        bad_rows, bad_ids = malformed_rows(folder)
        data.rejected.update((site_id, sid) for sid in bad_ids)
        for number, row in read_rows(folder / "settlements.csv"):
            if ("settlements.csv", number) in bad_rows:
                continue
            try:
                settlement = _settlement(site_id, row)
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise OracleDataError(f"{folder.name}/settlements.csv row {number}: {exc}") from exc
            data.settlements[settlement.key] = settlement
        for number, row in read_rows(folder / "lines.csv"):
            if ("lines.csv", number) in bad_rows:
                continue
            try:
                line = _line(site_id, row)
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise OracleDataError(f"{folder.name}/lines.csv row {number}: {exc}") from exc
            if line.settlement_key not in data.settlements:
                continue  # its settlement was rejected (or never existed): rejected at ingest
            if item_of(kb, line) is None:
                raise OracleDataError(
                    f"{folder.name}/lines.csv row {number}: {line.item_type} {line.item_code!r} "
                    "is not in the knowledge base and malformed.csv does not list the row"
                )
            data.lines.append(line)
            data.lines_of[line.settlement_key].append(line)
    return data


# --------------------------------------------------------------------------------------------
# Conventions of docs/rules.md
# --------------------------------------------------------------------------------------------


def item_of(kb: KnowledgeBase, line: Line) -> Drug | Service | None:
    """The KB entry of a line: drugs.csv for ``drug``, services.csv for service/consumable."""
    if line.item_type == "drug":
        return kb.drugs.get(line.item_code)
    return kb.services.get(line.item_code)


def age_on(birth: date, day: date) -> int:
    """Age in completed years on ``day``; the birthday itself counts as a completed year.

    Someone born on 29 February completes a year on 1 March in a common year.
    """
    before_birthday = (day.month, day.day) < (birth.month, birth.day)
    return day.year - birth.year - (1 if before_birthday else 0)


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


def is_person(doctor_id: str) -> bool:
    """``UNKNOWN`` and empty doctor ids are never a person."""
    return doctor_id not in ("", UNKNOWN_DOCTOR)


def month_of(moment: datetime) -> tuple[int, int]:
    """The calendar month of a datetime."""
    return (moment.year, moment.month)


def drug_lines(data: Dataset, kb: KnowledgeBase) -> Iterator[tuple[Line, Drug]]:
    """Every accepted drug line with its drugs.csv entry."""
    for line in data.lines:
        if line.item_type == "drug" and line.item_code in kb.drugs:
            yield line, kb.drugs[line.item_code]


def _flags(rule_id: str, keys: Iterable[SettlementKey]) -> set[Flag]:
    return {(rule_id, site, sid) for site, sid in keys}


# --------------------------------------------------------------------------------------------
# The rules, one function each; each returns the settlement keys it flags
# --------------------------------------------------------------------------------------------


def gender_conflict(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """A line whose item has a KB ``gender`` different from the settlement's ``gender``."""
    flagged: set[SettlementKey] = set()
    for line in data.lines:
        item = item_of(kb, line)
        s = data.settlements[line.settlement_key]
        if item is not None and item.gender is not None and item.gender != s.gender:
            flagged.add(s.key)
    return flagged


def age_conflict(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """A line whose item has ``min_age`` and age < min_age, or ``max_age`` and age > max_age.

    Age is in completed years on the date of ``admit_time``.
    """
    flagged: set[SettlementKey] = set()
    for line in data.lines:
        item = item_of(kb, line)
        if item is None:
            continue
        s = data.settlements[line.settlement_key]
        age = age_on(s.birth_date, s.admit_time.date())
        too_young = item.min_age is not None and age < item.min_age
        too_old = item.max_age is not None and age > item.max_age
        if too_young or too_old:
            flagged.add(s.key)
    return flagged


def over_quantity(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """Per (settlement, item_code), units or days of supply above the catalogue limit.

    Drugs: Σ quantity > ``max_units`` or Σ days of supply > ``max_days_supply``.
    Services (and consumables, whose codes are of services.csv): Σ quantity >
    ``max_per_day`` × stay days.
    """
    quantity: dict[tuple[SettlementKey, str], Decimal] = defaultdict(Decimal)
    supply: dict[tuple[SettlementKey, str], Decimal] = defaultdict(Decimal)
    for line in data.lines:
        group = (line.settlement_key, line.item_code)
        quantity[group] += line.quantity
        if line.item_type == "drug":
            supply[group] += days_of_supply(line, kb.drugs[line.item_code])
    flagged: set[SettlementKey] = set()
    for (key, code), units in quantity.items():
        if code in kb.drugs:
            drug = kb.drugs[code]
            if units > drug.max_units or supply[(key, code)] > drug.max_days_supply:
                flagged.add(key)
        else:
            limit = kb.services[code].max_per_day * stay_days(data.settlements[key])
            if units > limit:
                flagged.add(key)
    return flagged


def indication_mismatch(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """A drug with indications while the settlement has diagnoses and none starts with one."""
    flagged: set[SettlementKey] = set()
    for line, drug in drug_lines(data, kb):
        s = data.settlements[line.settlement_key]
        if not drug.indications or not s.diagnosis_codes:
            continue
        matches = any(code.startswith(p) for code in s.diagnosis_codes for p in drug.indications)
        if not matches:
            flagged.add(s.key)
    return flagged


def interaction(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """Two drug lines of one settlement whose codes form a pair of interactions.csv."""
    pairs = {frozenset((p.drug_a, p.drug_b)) for p in kb.interactions}
    flagged: set[SettlementKey] = set()
    for key, lines in data.lines_of.items():
        codes = [ln.item_code for ln in lines if ln.item_type == "drug"]
        for i, a in enumerate(codes):
            for b in codes[i + 1 :]:
                if frozenset((a, b)) in pairs:
                    flagged.add(key)
    return flagged


def duplicate_trace_code(data: Dataset) -> set[SettlementKey]:
    """A non-empty ``trace_code`` on more than one line, over all lines of all sites."""
    lines_with: dict[str, list[Line]] = defaultdict(list)
    for line in data.lines:
        if line.trace_code:
            lines_with[line.trace_code].append(line)
    flagged: set[SettlementKey] = set()
    for lines in lines_with.values():
        if len(lines) > 1:
            flagged.update(ln.settlement_key for ln in lines)
    return flagged


def cross_site_over_quantity(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """One patient and one drug: a 30-day window from sites ≥ 2 with Σ days > max_days_supply.

    The window starts at a settlement's admission *date* and holds every settlement of that
    patient with that drug admitted at most 30 days later (dates, both ends inclusive). Taking,
    for every settlement, the fullest window it starts is enough: any smaller qualifying window
    lies inside a fuller one that qualifies too, so the union of flagged settlements is the
    same.
    """
    supply: dict[tuple[str, str], dict[SettlementKey, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for line, drug in drug_lines(data, kb):
        s = data.settlements[line.settlement_key]
        supply[(s.patient_id, drug.code)][s.key] += days_of_supply(line, drug)
    flagged: set[SettlementKey] = set()
    for (_, code), per_settlement in supply.items():
        limit = kb.drugs[code].max_days_supply
        visits = sorted(per_settlement, key=lambda k: data.settlements[k].admit_time)
        for i, first in enumerate(visits):
            start = data.settlements[first].admit_time.date()
            window = []
            for k in visits[i:]:
                if data.settlements[k].admit_time.date() - start > CROSS_SITE_WINDOW:
                    break
                window.append(k)
            sites = {site for site, _ in window}
            total = sum((per_settlement[k] for k in window), Decimal(0))
            if len(sites) >= 2 and total > limit:
                flagged.update(window)
    return flagged


def monthly_pharmacy_spend(data: Dataset) -> set[SettlementKey]:
    """A patient's Σ ``total_amount`` of pharmacy visits in a calendar month ≥ 8000.00 RMB."""
    spend: dict[tuple[str, tuple[int, int]], Decimal] = defaultdict(Decimal)
    members: dict[tuple[str, tuple[int, int]], list[SettlementKey]] = defaultdict(list)
    for s in data.settlements.values():
        if s.visit_type != "pharmacy":
            continue
        group = (s.patient_id, month_of(s.settle_time))
        spend[group] += s.total_amount
        members[group].append(s.key)
    flagged: set[SettlementKey] = set()
    for group, total in spend.items():
        if total >= MONTHLY_PHARMACY_LIMIT:
            flagged.update(members[group])
    return flagged


def batch_prescribing(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """One doctor, one monitored drug, ≥ 3 different patients with order_times ≤ 60 s apart.

    Evaluated per site (a doctor is ``(site_id, doctor_id)``). For every line as the earliest,
    the group is every line of that doctor and drug ordered at most 60 s later; it qualifies when
    it holds ≥ 3 different patients, and then every settlement in it is flagged.
    """
    orders: dict[tuple[str, str, str], list[tuple[datetime, str, SettlementKey]]] = defaultdict(
        list
    )
    for line, drug in drug_lines(data, kb):
        s = data.settlements[line.settlement_key]
        if drug.monitored and is_person(s.doctor_id):
            orders[(s.site_id, s.doctor_id, drug.code)].append(
                (line.order_time, s.patient_id, s.key)
            )
    flagged: set[SettlementKey] = set()
    for events in orders.values():
        events.sort()
        for i, (start, _, _) in enumerate(events):
            group = []
            for event in events[i:]:
                if event[0] - start > BATCH_WINDOW:
                    break
                group.append(event)
            if len({patient for _, patient, _ in group}) >= BATCH_MIN_PATIENTS:
                flagged.update(key for _, _, key in group)
    return flagged


def split_admission(data: Dataset) -> set[SettlementKey]:
    """Two inpatient stays, one patient, one site, same principal diagnosis, gap 0..15 days.

    The gap is the later ``admit_time`` − the earlier ``discharge_time`` (datetimes), with both
    ends inclusive. Both stays are flagged.
    """
    stays: dict[tuple[str, str, str], list[Settlement]] = defaultdict(list)
    for s in data.settlements.values():
        if s.visit_type == "inpatient" and s.discharge_time is not None and s.diagnosis_codes:
            stays[(s.patient_id, s.site_id, s.diagnosis_codes[0])].append(s)
    flagged: set[SettlementKey] = set()
    for group in stays.values():
        for earlier in group:
            for later in group:
                if later is earlier or earlier.discharge_time is None:
                    continue
                gap = later.admit_time - earlier.discharge_time
                if timedelta(0) <= gap <= SPLIT_ADMISSION_WINDOW:
                    flagged.update((earlier.key, later.key))
    return flagged


def prescriber_outlier(data: Dataset, kb: KnowledgeBase) -> set[SettlementKey]:
    """A doctor's monthly Σ amount of one drug > 20 × the mean over every prescribing doctor.

    Federation-wide: a doctor is ``doctor_id`` over all sites; the month is that of
    ``order_time``. ``x > 20 × total / n`` is tested as ``x × n > 20 × total`` (exact).
    """
    amount: dict[tuple[str, tuple[int, int]], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    settlements: dict[tuple[str, tuple[int, int], str], set[SettlementKey]] = defaultdict(set)
    for line, drug in drug_lines(data, kb):
        s = data.settlements[line.settlement_key]
        if not is_person(s.doctor_id):
            continue
        month = month_of(line.order_time)
        amount[(drug.code, month)][s.doctor_id] += line.amount
        settlements[(drug.code, month, s.doctor_id)].add(s.key)
    flagged: set[SettlementKey] = set()
    for (code, month), per_doctor in amount.items():
        doctors = len(per_doctor)
        total = sum(per_doctor.values(), Decimal(0))
        for doctor, own in per_doctor.items():
            if own * doctors > PRESCRIBER_FACTOR * total:
                flagged.update(settlements[(code, month, doctor)])
    return flagged


def pharmacist_multi_site(data: Dataset) -> set[SettlementKey]:
    """One ``pharmacist_id`` at two different sites with ``settle_time``s ≤ 10 minutes apart."""
    shifts: dict[str, list[tuple[datetime, SettlementKey]]] = defaultdict(list)
    for s in data.settlements.values():
        if s.pharmacist_id:
            shifts[s.pharmacist_id].append((s.settle_time, s.key))
    flagged: set[SettlementKey] = set()
    for events in shifts.values():
        events.sort()
        for i, (start, first) in enumerate(events):
            for moment, other in events[i + 1 :]:
                if moment - start > PHARMACIST_WINDOW:
                    break
                if other[0] != first[0]:
                    flagged.update((first, other))
    return flagged


def data_quality(data: Dataset) -> set[SettlementKey]:
    """Settlements named by a rejected row, and accepted ones without a real doctor.

    ``doctor_id`` ``UNKNOWN`` anywhere, or empty at a hospital or clinic (empty is normal at a
    pharmacy).
    """
    flagged = set(data.rejected)
    for s in data.settlements.values():
        if s.doctor_id == UNKNOWN_DOCTOR or (not s.doctor_id and s.site_type != "pharmacy"):
            flagged.add(s.key)
    return flagged


def evaluate_dataset(data: Dataset, kb: KnowledgeBase) -> dict[str, set[SettlementKey]]:
    """Every rule over a loaded dataset, keyed by rule id."""
    return {
        "gender_conflict": gender_conflict(data, kb),
        "age_conflict": age_conflict(data, kb),
        "over_quantity": over_quantity(data, kb),
        "indication_mismatch": indication_mismatch(data, kb),
        "interaction": interaction(data, kb),
        "duplicate_trace_code": duplicate_trace_code(data),
        "cross_site_over_quantity": cross_site_over_quantity(data, kb),
        "monthly_pharmacy_spend": monthly_pharmacy_spend(data),
        "batch_prescribing": batch_prescribing(data, kb),
        "split_admission": split_admission(data),
        "prescriber_outlier": prescriber_outlier(data, kb),
        "pharmacist_multi_site": pharmacist_multi_site(data),
        "data_quality": data_quality(data),
    }


def evaluate(data_dir: Path, kb: KnowledgeBase) -> set[Flag]:
    """Every ``(rule_id, site_id, settlement_id)`` that a rule of docs/rules.md flags."""
    results = evaluate_dataset(load(Path(data_dir), kb), kb)
    flags: set[Flag] = set()
    for rule_id, keys in results.items():
        flags |= _flags(rule_id, keys)
    return flags
