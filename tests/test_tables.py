"""Feature tables that model owners bring: numeric columns and a 0/1 label, errors by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.models.bundle import FILES
from fedrisk.models.errors import ContractError
from fedrisk.models.tables import read_feature_table


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_column_but_the_label_is_a_feature_in_file_order(tmp_path: Path) -> None:
    table = _write(tmp_path / "t.csv", "b,label,a\n1.5,0,\n2,1,3\n")
    features, labels, spec = read_feature_table(table, "label")
    assert spec.names == ("b", "a")
    assert labels.tolist() == [0, 1]
    assert features[0, 0] == 1.5 and np.isnan(features[0, 1]) and features[1, 1] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,label\n1,0\nabc,1\n", "column 'x' is not numeric"),
        ("x,label\n1,0\n2,2\n", "row 3, column 'label': a label is 0 or 1"),
        ("x,y\n1,0\n", "no label column 'label'"),
    ],
)
def test_a_bad_table_is_refused_naming_column_and_row(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        read_feature_table(_write(tmp_path / "t.csv", text), "label")


def test_train_on_a_table_writes_a_complete_bundle(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    fraud = rng.random(3000) < 0.05
    ratio = np.where(fraud, rng.normal(2.5, 0.3, 3000), rng.normal(1.0, 0.3, 3000))
    rows = "\n".join(f"{r:.3f},{int(f)}" for r, f in zip(ratio, fraud, strict=True))
    table = _write(tmp_path / "t.csv", "price_ratio,label\n" + rows + "\n")
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app, ["model", "train", "--table", str(table), "--label", "label", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "auc 0.9" in result.output or "auc 1.0" in result.output


def test_a_column_empty_in_every_row_is_all_missing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,stay,label\n1.5,,0\n2.5,,1\n", encoding="utf-8")
    features, labels, spec = read_feature_table(path, "label")
    assert spec.names == ("a", "stay")
    assert np.isnan(features[:, 1]).all() and labels.tolist() == [0, 1]
