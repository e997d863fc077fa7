"""Reading a contract CSV file into columns of strings, keeping every row accounted for.

Rows with the wrong number of fields are not parsed but reported (with their row number and
settlement id) so that ingest can reject them instead of losing them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from fedrisk.models.errors import ContractError


@dataclass(frozen=True)
class BadShapeRow:
    """A row whose field count differs from the header's."""

    row: int
    settlement_id: str
    expected: int
    actual: int


@dataclass(frozen=True)
class CsvColumns:
    """The contract columns of one file, whitespace-trimmed, plus the file row of each record.

    ``rows[i]`` is the row number (header = 1) of record ``i`` of ``table``.
    """

    file: Path
    table: pa.Table
    rows: np.ndarray
    bad_shape: tuple[BadShapeRow, ...]

    @property
    def rows_read(self) -> int:
        return int(self.table.num_rows) + len(self.bad_shape)

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)


def read_contract_csv(path: Path, columns: tuple[str, ...]) -> CsvColumns:
    """Read ``path`` keeping only ``columns`` (all as strings); extra columns are ignored.

    Raises
    ------
    ContractError
        When the file is missing, is not UTF-8, or lacks one of ``columns``.
    """
    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    header = _header(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ContractError(f"{path.name}: missing column(s) {', '.join(missing)}")
    bad: list[tuple[int, str]] = []

    def on_bad_row(row: pcsv.InvalidRow) -> str:
        bad.append((row.number or 0, row.text or ""))
        return "skip"

    try:
        table = _parse(path, columns, on_bad_row, threads=True)
        if bad and not _locate(path, bad):
            bad.clear()  # a single-threaded parse numbers every malformed row itself
            table = _parse(path, columns, on_bad_row, threads=False)
    except pa.ArrowInvalid:
        # Arrow's message may quote the offending row, identifiers included: never repeat it.
        raise ContractError(
            f"{path.name}: unreadable CSV (invalid UTF-8 or unbalanced quotes); nothing ingested"
        ) from None
    trimmed = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in columns})
    bad_shape = tuple(_bad_shape_row(number, text, len(header)) for number, text in bad)
    return CsvColumns(
        path, trimmed, _row_numbers(table.num_rows, [b.row for b in bad_shape]), bad_shape
    )


def _parse(
    path: Path,
    columns: tuple[str, ...],
    on_bad_row: Callable[[pcsv.InvalidRow], str],
    threads: bool,
) -> pa.Table:
    return pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(use_threads=threads, block_size=1 << 24),
        # Quoted values may hold line breaks (free-text item names from some HIS exports).
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_bad_row, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            include_columns=list(columns),
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _locate(path: Path, bad: list[tuple[int, str]]) -> bool:
    """Number the malformed rows of a multi-threaded parse (Arrow gives none) by finding each
    one's text at the start of a line of the file; False when one cannot be found."""
    data = path.read_bytes()
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    numbered: list[tuple[int, str]] = []
    taken: set[int] = set()
    for _, text in bad:
        needle = text.encode("utf-8")
        position = data.find(needle)
        while position != -1 and (position in taken or (position and data[position - 1] != 10)):
            position = data.find(needle, position + 1)
        if position == -1:
            return False
        taken.add(position)
        numbered.append((int(np.searchsorted(newlines, position)) + 1, text))
    bad[:] = sorted(numbered)
    return True


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    except UnicodeDecodeError:
        raise ContractError(f"{path.name}: the header is not UTF-8") from None


def _bad_shape_row(number: int, text: str, expected: int) -> BadShapeRow:
    fields = next(csv.reader([text]), [])
    settlement_id = fields[0].strip() if fields else ""
    return BadShapeRow(number, settlement_id, expected, len(fields))


def _row_numbers(count: int, skipped: list[int]) -> np.ndarray:
    """File row numbers of the parsed records, given the row numbers that were skipped."""
    rows = np.arange(2, count + 2, dtype=np.int64)
    for skipped_row in sorted(skipped):
        rows[rows >= skipped_row] += 1
    return rows
