"""Byte-level scans for raw identifiers: the proof does not trust the code that wrote the files."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from fedrisk.models.schema import UNKNOWN_DOCTOR

IDENTIFIER_COLUMNS = ("patient_id", "patient_name", "doctor_id", "pharmacist_id")


def raw_identifiers(settlements_csv: Path) -> set[str]:
    """Every patient ID, name, doctor ID and pharmacist ID that a settlements file names."""
    found: set[str] = set()
    with settlements_csv.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            for column in IDENTIFIER_COLUMNS:
                value = (row.get(column) or "").strip()
                if value and value != UNKNOWN_DOCTOR:
                    found.add(value)
    return found


def files_containing(root: Path, needles: set[str]) -> dict[str, list[str]]:
    """``{file: [needles found]}`` over the bytes of every file under ``root``."""
    encoded = [(n, n.encode("utf-8")) for n in needles]
    hits: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found = [n for n, b in encoded if b in data]
        if found:
            hits[str(path.relative_to(root))] = found[:5]
    return hits


def store_values_containing(store: Path, needles: set[str]) -> list[tuple[str, str]]:
    """(table.column, value) of every string in the store that equals or contains a needle.

    Complements the byte scan: DuckDB compresses strings, so a leaked value might not appear
    as plain bytes in the file; this reads every text column back through SQL.
    """
    hits: list[tuple[str, str]] = []
    with duckdb.connect(str(store), read_only=True) as db:
        columns = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for table, column in columns:
            values = {
                str(v[0])
                for v in db.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall()
                if v[0]
            }
            for value in values:
                if any(n in value for n in needles):
                    hits.append((f"{table}.{column}", value))
    return hits
