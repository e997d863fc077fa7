"""Writing the generated rows as contract-v1 CSV, column by column.

Columns are formatted as whole arrays (times, money, identifiers) and joined into text rows;
the defects of ``malformed`` are applied to the few rows they touch, and the row number of each
(the header is row 1) goes to ``malformed.csv``.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedrisk.models.schema import LABEL_COLUMNS, LINE_COLUMNS, SETTLEMENT_COLUMNS, TRUTH_COLUMNS
from fedrisk.synth.book import Incident
from fedrisk.synth.clock import I64, format_dates, format_datetimes, format_money
from fedrisk.synth.malformed import SitePlan, break_line, break_settlement
from fedrisk.synth.population import GENDER_LETTERS, INSURANCE_TYPES
from fedrisk.synth.tables import NO_DOCTOR, UNKNOWN_DOCTOR, VISITS
from fedrisk.synth.world import World

MALFORMED_COLUMNS = ("file", "row", "settlement_id", "field")
_TRACE_MULTIPLIER = 7_654_321_013  # coprime with 10**13: serials map to distinct codes
_TRACE_OFFSET = 1_234_567_890_123


@dataclass(frozen=True)
class SiteFiles:
    """What was written for one site: data rows per file and the malformed rows."""

    settlements: int
    lines: int
    labels: int
    malformed: int


def _text(value: str) -> str:
    """A CSV field: quoted only when it holds a comma, a quote or a line break."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _write(path: Path, header: tuple[str, ...], rows: list[str]) -> None:
    body = "\n".join(rows)
    path.write_text(",".join(header) + "\n" + body + ("\n" if rows else ""), encoding="utf-8")


def trace_codes(serial: I64, item: I64) -> list[str]:
    """20-digit traceability codes: ``8``, six digits of the product, 13 of the serial."""
    product = (item * 7919 + 104_729) % 900_000 + 100_000
    scrambled = (serial * _TRACE_MULTIPLIER + _TRACE_OFFSET) % 10**13
    return [
        f"8{p}{s:013d}" if n >= 0 else ""
        for p, s, n in zip(product.tolist(), scrambled.tolist(), serial.tolist(), strict=True)
    ]


class Writer:
    """Formats and writes every file of a run; see the module docstring."""

    def __init__(self, world: World, totals: I64) -> None:
        self.world = world
        self.totals = totals
        pop = world.pop
        self.ids = pop.national_ids()
        self.names = pop.names()
        n = len(pop)
        self.genders = np.array(GENDER_LETTERS, dtype=object)[pop.gender[:n]]
        self.births = np.array(format_dates(pop.birth[:n]), dtype=object)
        self.insurance = np.array(INSURANCE_TYPES, dtype=object)[pop.insurance[:n]]
        self.doctors = np.array([*world.staff.doctor_ids, "UNKNOWN", ""], dtype=object)
        self.pharmacists = np.array([*world.staff.pharmacist_ids, ""], dtype=object)
        items = world.catalog.items
        self.item_codes = np.array([_text(c) for c in items.codes], dtype=object)
        self.item_names = np.array([_text(c) for c in items.names], dtype=object)
        self.item_types = np.where(items.is_drug, "drug", "service").astype(object)
        self.known_codes = frozenset(items.codes)
        self.lines, self.alive = world.lines.frozen()

    def settlement_columns(self, rows: I64) -> list[list[str]]:
        """The 18 contract columns of settlement rows, as lists of text."""
        w, s = self.world, self.world.sett
        site = w.sites[int(s.site[rows[0]])] if len(rows) else None
        p = s.patient[rows]
        doctor = s.doctor[rows]
        doctor = np.where(doctor == UNKNOWN_DOCTOR, len(self.doctors) - 2, doctor)
        doctor = np.where(doctor == NO_DOCTOR, len(self.doctors) - 1, doctor)
        pharmacist = np.where(s.pharmacist[rows] < 0, len(self.pharmacists) - 1, s.pharmacist[rows])
        totals = self.totals[rows]
        dx = np.array([_text(v) for v in w.dx.values], dtype=object)
        drg = np.array([_text(v) for v in w.drg.values], dtype=object)
        return [
            [f"S{k:08d}" for k in s.number[rows].tolist()],
            [site.site_id if site else ""] * len(rows),
            [site.site_type if site else ""] * len(rows),
            self.ids[p].tolist(),
            self.names[p].tolist(),
            self.genders[p].tolist(),
            self.births[p].tolist(),
            self.insurance[p].tolist(),
            np.array(VISITS, dtype=object)[s.visit[rows]].tolist(),
            format_datetimes(s.admit[rows]),
            format_datetimes(s.discharge[rows]),
            dx[s.dx[rows]].tolist(),
            drg[s.drg[rows]].tolist(),
            self.doctors[doctor].tolist(),
            self.pharmacists[pharmacist].tolist(),
            format_money(totals),
            format_money((totals * 7 + 5) // 10),
            format_datetimes(s.settle()[rows]),
        ]

    def line_columns(self, index: I64, trace: I64) -> list[list[str]]:
        """The 12 contract columns of fee lines (by index into the frozen line columns)."""
        c, w = self.lines, self.world
        sett = c["sett"][index]
        item = c["item"][index]
        days = c["days"][index]
        site = w.sites[int(w.sett.site[sett[0]])] if len(index) else None
        return [
            [f"S{k:08d}" for k in w.sett.number[sett].tolist()],
            [site.site_id if site else ""] * len(index),
            [str(v) for v in c["line_no"][index].tolist()],
            self.item_types[item].tolist(),
            self.item_codes[item].tolist(),
            self.item_names[item].tolist(),
            trace_codes(trace, item),
            [str(v) for v in c["qty"][index].tolist()],
            format_money(c["price"][index]),
            format_money(c["amount"][index]),
            ["" if v < 0 else str(v) for v in days.tolist()],
            format_datetimes(c["order"][index]),
        ]

    def write_site(
        self, out: Path, site_index: int, plan: SitePlan, violation: dict[int, str], seed: int
    ) -> SiteFiles:
        """Write settlements, lines, labels and malformed rows of one site."""
        w = self.world
        site = w.sites[site_index]
        folder = out / site.site_id
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, 7, site_index])
        malformed: list[tuple[str, int, str, str]] = []
        # settlements, in settlement-number order
        rows = w.site_rows(site_index)
        columns = self.settlement_columns(rows)
        text = [",".join(r) for r in zip(*columns, strict=True)]
        defects: dict[int, tuple[str, str]] = {}
        inserts: list[tuple[int, str, tuple[str, str]]] = []
        for row, kind in sorted(plan.settlements.items()):
            pos = int(np.searchsorted(rows, row))
            fields = [col[pos] for col in columns]
            if kind == "settlement_id":
                later = int(rng.integers(pos, len(rows)))
                inserts.append((later, text[pos], (fields[0], kind)))
            else:
                broken = break_settlement(fields, kind, row)
                text[pos] = ",".join(broken)
                defects[pos] = (fields[0], kind)
        final = _merge(text, inserts, defects, "settlements.csv", malformed)
        _write(folder / "settlements.csv", SETTLEMENT_COLUMNS, final)
        n_settlements = len(final)
        # fee lines, in settlement order
        c = self.lines
        mine = np.flatnonzero(self.alive & (w.sett.site[c["sett"]] == site_index))
        mine = mine[np.lexsort((c["line_no"][mine], c["sett"][mine]))]
        columns = self.line_columns(mine, c["trace"][mine])
        text = [",".join(r) for r in zip(*columns, strict=True)]
        defects = {}
        for pos in np.flatnonzero(w.rejected[c["sett"][mine]]).tolist():
            defects[pos] = (columns[0][pos], "settlement_id")
        for line, kind in sorted(plan.lines.items()):
            pos = int(np.flatnonzero(mine == line)[0])
            fields = [col[pos] for col in columns]
            text[pos] = ",".join(break_line(fields, kind, line, self.known_codes))
            defects[pos] = (fields[0], kind)
        inserts = []
        for salt in plan.ghosts:
            source = int(mine[salt % len(mine)])
            serial = np.array([w.lines.new_trace() if c["trace"][source] >= 0 else -1])
            copy = [col[0] for col in self.line_columns(np.array([source]), serial)]
            ghost = ",".join(break_line(copy, "ghost", salt, self.known_codes))
            inserts.append((int(rng.integers(0, len(mine))), ghost, ("", "settlement_id")))
        final = _merge(text, inserts, defects, "lines.csv", malformed)
        _write(folder / "lines.csv", LINE_COLUMNS, final)
        n_lines = len(final)
        # labels: half of the accepted settlements, at random
        labelled = rows[~w.rejected[rows] & (rng.random(len(rows)) < 0.5)]
        labels = []
        for row, number in zip(labelled.tolist(), w.sett.number[labelled].tolist(), strict=True):
            kind = violation.get(row, "")
            labels.append(f"S{number:08d},{site.site_id},{1 if kind else 0},{kind}")
        _write(folder / "labels.csv", LABEL_COLUMNS, labels)
        malformed.sort(key=lambda m: (m[0] != "settlements.csv", m[1]))
        _write(
            folder / "malformed.csv",
            MALFORMED_COLUMNS,
            [f"{f},{r},{sid},{field}" for f, r, sid, field in malformed],
        )
        return SiteFiles(n_settlements, n_lines, len(labels), len(malformed))


def _merge(
    text: list[str],
    inserts: list[tuple[int, str, tuple[str, str]]],
    defects: dict[int, tuple[str, str]],
    file: str,
    malformed: list[tuple[str, int, str, str]],
) -> list[str]:
    """Rows with extra rows inserted after given positions; records every malformed row with
    its file row number (header = row 1)."""
    inserts = sorted(inserts, key=lambda x: x[0])
    after = [i for i, _, _ in inserts]
    for pos, (sid, field) in defects.items():
        malformed.append((file, pos + bisect_left(after, pos) + 2, sid, field))
    final: list[str] = []
    done = 0
    for position, row, (sid, field) in inserts:
        final.extend(text[done : position + 1])
        done = position + 1
        malformed.append((file, len(final) + 2, sid, field))
        final.append(row)
    final.extend(text[done:])
    return final


def write_truth(out: Path, world: World, incidents: list[Incident]) -> int:
    """``truth.csv``: one row per settlement of each incident; returns the row count."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    count = 0
    for number, incident in enumerate(incidents, start=1):
        for site, sid in incident.settlements:
            writer.writerow((f"I{number:06d}", incident.rule, world.sites[site].site_id, sid))
            count += 1
    (out / "truth.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return count
