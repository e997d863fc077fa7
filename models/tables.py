"""Feature tables that model owners bring: a CSV of numeric columns and one 0/1 label column.

``fedrisk model train --table CSV --label COL`` trains on such a table with the same trainer
as the node path (the federated trainer will too); every column but the label is a feature, in
file order. Empty cells are missing values (NaN); anything else that is not a number is refused
with its column and row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
from numpy.typing import NDArray

from fedrisk.models.errors import ContractError
from fedrisk.models.features import FeatureSpec, feature_matrix


def read_feature_table(
    path: Path, label: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], FeatureSpec]:
    """The feature matrix, the labels and the spec (column names) of a numeric CSV."""
    try:
        table = pv.read_csv(path, convert_options=pv.ConvertOptions(strings_can_be_null=True))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ContractError(f"{path}: cannot read the table ({exc})") from None
    if label not in table.column_names:
        raise ContractError(f"{path}: no label column {label!r} (columns: {table.column_names})")
    names = [c for c in table.column_names if c != label]
    for name in names:  # a column that is empty in every row (a pharmacy's stay lengths)
        if pa.types.is_null(table.column(name).type):
            index = table.column_names.index(name)
            table = table.set_column(index, name, table.column(name).cast(pa.float64()))
    for name in [label, *names]:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise ContractError(f"{path}: column {name!r} is not numeric ({_first_bad(column)})")
    labels = table.column(label).to_numpy(zero_copy_only=False)
    if np.isnan(labels.astype(np.float64)).any() or not np.isin(labels, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0]) + 2
        raise ContractError(f"{path}: row {row}, column {label!r}: a label is 0 or 1")
    spec = FeatureSpec(tuple(names))
    return feature_matrix(table, spec), labels.astype(np.int64), spec


def _first_bad(column: pa.ChunkedArray) -> str:
    """Where a non-numeric column first holds a non-number (header = row 1)."""
    numeric = pc.match_substring_regex(column.cast(pa.string()), r"^\s*[-+]?[0-9.eE]+\s*$")
    bad = np.flatnonzero(~np.asarray(numeric.fill_null(True).to_numpy(zero_copy_only=False)))
    if len(bad) == 0:
        return "not a number type"
    return f"row {int(bad[0]) + 2} holds {column[int(bad[0])].as_py()!r}"
