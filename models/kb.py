"""The knowledge base (知识库): drug and service catalogues and drug interactions.

A knowledge base is a folder with the three CSV files of data contract v1 (``drugs.csv``,
``services.csv``, ``interactions.csv``). The project ships a default one; a deployment points
at its own with the same columns. Every knowledge base has a version, the SHA-256 of its files'
contents, which every result computed from it records.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import TypeVar

from fedrisk.models.errors import KnowledgeBaseError

KB_FILES = ("drugs.csv", "services.csv", "interactions.csv")
SEVERITIES = ("info", "warn", "block")
T = TypeVar("T")


@dataclass(frozen=True)
class Drug:
    """One row of ``drugs.csv``."""

    code: str
    name: str
    atc: str
    unit: str
    max_units: int
    max_days_supply: int
    days_per_unit: int
    gender: str | None
    min_age: int | None
    max_age: int | None
    indications: tuple[str, ...]
    monitored: bool
    typical_unit_price: Decimal


@dataclass(frozen=True)
class Service:
    """One row of ``services.csv``."""

    code: str
    name: str
    gender: str | None
    min_age: int | None
    max_age: int | None
    max_per_day: int
    typical_unit_price: Decimal


@dataclass(frozen=True)
class Interaction:
    """One row of ``interactions.csv``: two drugs that must not be prescribed together."""

    drug_a: str
    drug_b: str
    severity: str


@dataclass(frozen=True)
class KnowledgeBase:
    """The three catalogues, keyed by item code, and their content version."""

    drugs: dict[str, Drug]
    services: dict[str, Service]
    interactions: tuple[Interaction, ...]
    version: str
    source: str

    def item_codes(self) -> frozenset[str]:
        """Every code a fee line may name."""
        return frozenset(self.drugs) | frozenset(self.services)

    def interaction(self, code_a: str, code_b: str) -> Interaction | None:
        """The interaction between two drugs, in either order, if the KB lists one."""
        for pair in self.interactions:
            if {pair.drug_a, pair.drug_b} == {code_a, code_b}:
                return pair
        return None


def default_kb_dir() -> Path:
    """The folder of the knowledge base shipped with fedrisk."""
    return Path(str(resources.files("fedrisk.models") / "kb"))


def load_kb(path: Path | str | None = None) -> KnowledgeBase:
    """Load a knowledge base folder; ``None`` loads the default one.

    Raises
    ------
    KnowledgeBaseError
        When a file is missing, a column is missing, or a value is malformed; the message names
        the file, the row and the field.
    """
    folder = Path(path) if path is not None else default_kb_dir()
    digest = hashlib.sha256()
    for name in KB_FILES:
        file = folder / name
        if not file.is_file():
            raise KnowledgeBaseError(f"{file}: knowledge base file is missing")
        digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    drugs = {d.code: d for d in _read(folder / "drugs.csv", _drug)}
    services = {s.code: s for s in _read(folder / "services.csv", _service)}
    interactions = tuple(_read(folder / "interactions.csv", _interaction))
    for pair in interactions:
        for code in (pair.drug_a, pair.drug_b):
            if code not in drugs:
                raise KnowledgeBaseError(f"interactions.csv: drug {code!r} is not in drugs.csv")
    return KnowledgeBase(drugs, services, interactions, digest.hexdigest()[:16], str(folder))


class _Row:
    """Typed access to one CSV row, with errors that name file, row and field."""

    def __init__(self, file: Path, number: int, row: dict[str, str]) -> None:
        self.file, self.number, self.row = file, number, row

    def fail(self, field: str, why: str) -> KnowledgeBaseError:
        return KnowledgeBaseError(f"{self.file.name} row {self.number}, field {field!r}: {why}")

    def text(self, field: str, required: bool = True) -> str:
        value = self.row.get(field)
        if value is None:
            raise self.fail(field, "column is missing")
        value = value.strip()
        if required and not value:
            raise self.fail(field, "is empty")
        return value

    def integer(self, field: str) -> int:
        value = self.optional_int(field)
        if value is None:
            raise self.fail(field, "is empty")
        return value

    def optional_int(self, field: str) -> int | None:
        value = self.text(field, required=False)
        if not value:
            return None
        if not value.isdigit():
            raise self.fail(field, f"{value!r} is not a non-negative integer")
        return int(value)

    def money(self, field: str) -> Decimal:
        value = self.text(field)
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise self.fail(field, f"{value!r} is not a decimal") from None
        if amount < 0:
            raise self.fail(field, "is negative")
        return amount

    def gender(self) -> str | None:
        value = self.text("gender", required=False)
        if value not in ("", "M", "F"):
            raise self.fail("gender", f"{value!r} is not M, F or empty")
        return value or None

    def choice(self, field: str, allowed: tuple[str, ...]) -> str:
        value = self.text(field)
        if value not in allowed:
            raise self.fail(field, f"{value!r} is not one of {', '.join(allowed)}")
        return value


def _read(file: Path, build: Callable[[_Row], T]) -> Iterator[T]:
    with file.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield build(_Row(file, number, row))


def _drug(r: _Row) -> Drug:
    indications = tuple(p for p in r.text("indications", required=False).split("|") if p)
    return Drug(
        code=r.text("code"),
        name=r.text("name"),
        atc=r.text("atc", required=False),
        unit=r.text("unit", required=False),
        max_units=r.integer("max_units"),
        max_days_supply=r.integer("max_days_supply"),
        days_per_unit=r.integer("days_per_unit"),
        gender=r.gender(),
        min_age=r.optional_int("min_age"),
        max_age=r.optional_int("max_age"),
        indications=indications,
        monitored=r.choice("monitored", ("0", "1")) == "1",
        typical_unit_price=r.money("typical_unit_price"),
    )


def _service(r: _Row) -> Service:
    return Service(
        code=r.text("code"),
        name=r.text("name"),
        gender=r.gender(),
        min_age=r.optional_int("min_age"),
        max_age=r.optional_int("max_age"),
        max_per_day=r.integer("max_per_day"),
        typical_unit_price=r.money("typical_unit_price"),
    )


def _interaction(r: _Row) -> Interaction:
    return Interaction(r.text("drug_a"), r.text("drug_b"), r.choice("severity", SEVERITIES))
