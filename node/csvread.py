"""Reading a contract CSV file into columns of strings, keeping every row accounted for.

Rows with the wrong number of fields are not parsed but reported (with their row number and,
when it looks like one, their settlement id) so that ingest rejects them instead of losing
them. A row's number is the line of the file on which it starts (the header is line 1), so an
operator finds it in any editor even when the file has blank lines or line breaks inside
quoted values.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from fedrisk.models.errors import ContractError
from fedrisk.models.schema import PATIENT_ID_PATTERN

# A settlement id is repeated in a reject only when it looks like one: never a value that
# could be an identifier or a fragment of a broken row (an export may misplace columns).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
_NATIONAL_ID = re.compile(PATIENT_ID_PATTERN)
WITHHELD = "(withheld)"


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

    ``rows[i]`` is the row number (the line it starts on; header = 1) of record ``i``.
    """

    file: Path
    table: pa.Table
    rows: np.ndarray
    bad_shape: tuple[BadShapeRow, ...]

    @property
    def rows_read(self) -> int:
        return int(self.table.num_rows) + len(self.bad_shape)

    @property
    def num_rows(self) -> int:
        """Records read, well- or badly-shaped (what the audit log counts)."""
        return self.rows_read

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)


def safe_settlement_id(value: str) -> str:
    """``value`` if it may be shown in a reject, else a placeholder."""
    if not value or (_SAFE_ID.match(value) and not _NATIONAL_ID.match(value)):
        return value
    return WITHHELD


def read_contract_csv(path: Path, columns: tuple[str, ...]) -> CsvColumns:
    """Read ``path`` keeping only ``columns`` (all as strings); extra columns are ignored.

    Raises
    ------
    ContractError
        When the file is missing, is not UTF-8, or lacks one of ``columns``.
    """
    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    data = path.read_bytes()
    header = _header(path.name, data)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ContractError(f"{path.name}: missing column(s) {', '.join(missing)}")
    bad: list[str] = []

    def on_bad_row(row: pcsv.InvalidRow) -> str:
        bad.append(row.text or "")
        return "skip"

    try:
        table = _parse(data, header, columns, on_bad_row)
    except pa.ArrowInvalid:
        # Arrow's message may quote the offending row, identifiers included: never repeat it.
        raise ContractError(
            f"{path.name}: unreadable CSV (invalid UTF-8 or unbalanced quotes); nothing ingested"
        ) from None
    starts, lines, quotes = _record_starts(data)
    if quotes % 2:
        line = int(lines[-1]) if len(lines) else 1
        raise ContractError(
            f"{path.name}: the row starting on line {line} opens a quote that is never closed "
            "(it would swallow every row after it); nothing ingested"
        )
    bad_at = _locate(data, starts, bad)
    good = np.ones(len(starts), dtype=bool)
    good[bad_at] = False
    rows = lines[good]
    if len(rows) != table.num_rows:  # a layout Arrow reads differently: number by record
        rows = np.arange(2, table.num_rows + 2, dtype=np.int64)
    id_index = header.index("settlement_id") if "settlement_id" in header else 0
    bad_shape = tuple(
        _bad_shape_row(int(lines[i]), text, id_index, len(header))
        for i, text in sorted(zip(bad_at, bad, strict=True))
    )
    trimmed = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in columns})
    return CsvColumns(path, trimmed, rows, bad_shape)


def _parse(
    data: bytes,
    header: list[str],
    columns: tuple[str, ...],
    on_bad_row: Callable[[pcsv.InvalidRow], str],
) -> pa.Table:
    return pcsv.read_csv(
        pa.BufferReader(data),
        # The header is read by us (names stripped of spaces), so Arrow skips it.
        # One thread, 1 MiB blocks: ingest already parses settlements and lines side by side,
        # and a threaded parse costs ~60% more CPU for the same work (measured, 2 cores).
        read_options=pcsv.ReadOptions(
            column_names=header, skip_rows=1, block_size=1 << 20, use_threads=False
        ),
        # Quoted values may hold line breaks (free-text item names from some HIS exports).
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_bad_row, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            include_columns=list(columns),
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _header(name: str, data: bytes) -> list[str]:
    end = re.search(rb"[\r\n]", data)
    first = data[: end.start()] if end else data
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ContractError(f"{name}: the header is not UTF-8") from None
    header = [field.strip() for field in next(csv.reader([text]), [])]
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise ContractError(f"{name}: column(s) {', '.join(repeated)} appear more than once")
    return header


def _record_starts(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Byte offsets of the non-empty records after the header, the line each starts on, and
    how many quote characters the file holds.

    A line break ends a record unless it lies inside quotes (an odd number of quote characters
    before it); empty records (blank lines) are skipped, as the CSV parser skips them.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buf == ord("\n"))
    if b'"' not in data and b"\r" not in data and b"\n\n" not in data:  # one record a line
        starts = breaks + 1
        starts = starts[starts < len(buf)]
        return starts, np.arange(2, len(starts) + 2, dtype=np.int64), 0
    cr = np.flatnonzero(buf == ord("\r"))
    if cr.size:  # a CR not followed by LF is a line break of its own
        after = np.minimum(cr + 1, len(buf) - 1)
        lone = cr[(cr + 1 >= len(buf)) | (buf[after] != ord("\n"))]
        breaks = np.sort(np.concatenate((breaks, lone)))
    quotes = np.flatnonzero(buf == ord('"'))
    ends = breaks[np.searchsorted(quotes, breaks) % 2 == 0] if quotes.size else breaks
    starts = ends + 1
    starts = starts[starts < len(buf)]
    starts = starts[(buf[starts] != ord("\n")) & (buf[starts] != ord("\r"))]
    return starts, np.searchsorted(breaks, starts) + 1, int(quotes.size)


def _locate(data: bytes, starts: np.ndarray, texts: list[str]) -> np.ndarray:
    """Indices (into ``starts``) of the records whose text Arrow rejected, each found where a
    record starts (Arrow's own numbering counts physical lines, and none in parallel parses)."""
    found: list[int] = []
    for text in texts:
        needle = text.encode("utf-8")
        position = data.find(needle)
        while position != -1:
            index = int(np.searchsorted(starts, position))
            if index < len(starts) and starts[index] == position and index not in found:
                found.append(index)
                break
            position = data.find(needle, position + 1)
    return np.array(found, dtype=np.int64)


def _bad_shape_row(line: int, text: str, id_index: int, expected: int) -> BadShapeRow:
    fields = next(csv.reader([text]), [])
    value = fields[id_index].strip() if id_index < len(fields) else ""
    return BadShapeRow(line, safe_settlement_id(value), expected, len(fields))
