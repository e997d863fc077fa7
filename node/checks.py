"""Vectorised checks of one column of strings; each returns a boolean numpy mask of *good* rows.

They run over whole Arrow columns (RE2 regexes, Arrow's strptime), so validating a million
rows costs a handful of passes in C++, not a million Python calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedrisk.models.schema import DATE_FORMAT, DATETIME_FORMAT, PATIENT_ID_PATTERN

Column: TypeAlias = pa.ChunkedArray | pa.Array

_SHAPES = {
    DATE_FORMAT: r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}$",
    DATETIME_FORMAT: r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
}
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def mask(values: Column) -> np.ndarray:
    """An Arrow boolean column as a numpy mask, nulls counted as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def empty(col: Column) -> np.ndarray:
    return mask(pc.equal(col, ""))


def matches(col: Column, pattern: str) -> np.ndarray:
    return mask(pc.match_substring_regex(col, pattern))


def one_of(col: Column, allowed: Iterable[str]) -> np.ndarray:
    return mask(pc.is_in(col, value_set=pa.array(list(allowed), pa.string())))


def timestamps(col: Column, fmt: str) -> tuple[np.ndarray, pa.ChunkedArray]:
    """Good mask and parsed timestamps (seconds) of a date or datetime column.

    A value is good when it has exactly the contract's shape, parses, and names a real day:
    Arrow's parser accepts ``2026-02-30`` (as 2 March), so the parsed day of the month must
    equal the written one.
    """
    shaped = matches(col, _SHAPES[fmt])
    parsed = pc.strptime(col, format=fmt, unit="s", error_is_null=True)
    day_text = pc.if_else(pa.array(shaped), pc.utf8_slice_codeunits(col, 8, 10), pa.scalar("0"))
    written_day = pc.cast(day_text, pa.int64())
    return shaped & mask(pc.equal(pc.day(parsed), written_day)), parsed


def as_float(col: Column, good: np.ndarray) -> np.ndarray:
    """Numeric value of the rows where ``good`` (already pattern-checked), NaN elsewhere."""
    text = pc.if_else(pa.array(good), col, pa.scalar("nan"))
    return np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))


def national_ids(col: Column) -> np.ndarray:
    """18-character GB 11643 identifiers with a correct check digit."""
    good = matches(col, PATIENT_ID_PATTERN)
    if not good.any():
        return good
    text = pc.if_else(pa.array(good), col, pa.scalar("0" * 18))
    chars = _fixed_width_bytes(text, 18)
    digits = chars[:, :17].astype(np.int64) - ord("0")
    expected = _ID_CHECK[(digits @ _ID_WEIGHTS) % 11]
    return np.asarray(good & (chars[:, 17] == expected), dtype=bool)


def duplicated(col: Column) -> np.ndarray:
    """True for every occurrence of a value after its first one."""
    if len(col) == 0:
        return np.zeros(0, dtype=bool)
    whole = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    codes = np.asarray(pc.dictionary_encode(whole).indices.to_numpy(zero_copy_only=False))
    _, first = np.unique(codes, return_index=True)
    later = np.ones(len(codes), dtype=bool)
    later[first] = False
    return later


def _fixed_width_bytes(col: Column, width: int) -> np.ndarray:
    """An (n, width) uint8 view of a column whose values are all ``width`` ASCII bytes."""
    whole = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = np.frombuffer(whole.buffers()[1], dtype=np.int32)
    offsets = offsets[whole.offset : whole.offset + len(whole) + 1]
    data = np.frombuffer(whole.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(-1, width)
