"""Enrollment and federated bagging through real SuperLink/SuperNode processes (TLS, node
authentication), on numeric tables, one per node."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedrisk.crypto import he
from fedrisk.crypto.identity import Identity
from fedrisk.deploy.local import LocalFederation
from fedrisk.models.bundle import sign_bundle
from fedrisk.node import registry
from fedrisk.node.home import NodeHome, init_home
from tests.nodes import operator

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "deploy" / "app"
SITES = ("H1", "H2", "P1")
pytestmark = pytest.mark.federation


def _table(path: Path, seed: int, rows: int = 1500) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    logit = 1.5 * x[:, 0] - x[:, 1] * x[:, 2] - 1.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(5)] + ["label"])
        writer.writerows([*map(float, row), int(label)] for row, label in zip(x, y, strict=True))


def _homes(root: Path) -> list[NodeHome]:
    homes = [init_home(root / site, site) for site in SITES]
    for home in homes:  # the operators exchanged identity files
        for other in homes:
            if other is not home:
                home.trust("federation_member", other.public_identity())
    return homes


def test_enrollment_and_bagging_rounds_over_flower(tmp_path: Path) -> None:
    homes = _homes(tmp_path / "nodes")
    configs = []
    for i, home in enumerate(homes):
        table = tmp_path / f"table-{home.site_id}.csv"
        _table(table, seed=i)
        configs.append({"home": str(home.root), "table": str(table), "label": "label"})
    state = tmp_path / "coordinator"
    run_config = {
        "federation": "demo",
        "run": "r1",
        "rounds": 2,
        "trees": 5,
        "nodes": 3,
        "min-nodes": 3,
        "key-creator": "H1",
        "state-dir": str(state),
    }
    with LocalFederation(configs, workdir=tmp_path / "flower") as federation:
        result = federation.run(APP, run_config, timeout=400)
        assert result.ok, (result.status, result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads((state / "report-r1.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3]
    assert all(sorted(r["accepted"]) == sorted(SITES) for r in report["rounds"])
    assert report["rounds"][0]["evaluation"] is None  # no model before the first trees
    final = report["rounds"][-1]["evaluation"]
    assert final["auc"] > 0.7, final
    # The coordinator holds the public HE context only; each node holds the epoch at 0600.
    assert he.is_public(he.load_context((state / "he-public-epoch-1.bin").read_bytes()))
    for home in homes:
        assert (home.secrets / "federation" / "demo" / "epoch-1.json").is_file()
    secret = json.loads((homes[0].secrets / "federation" / "demo" / "epoch-1.json").read_bytes())
    for path in state.rglob("*"):  # nothing the coordinator kept holds a tree or the secret
        if path.is_file():
            data = path.read_bytes()
            for marker in (b"Tree=", b"threshold=", b"leaf_value=", secret["secret"].encode()):
                assert marker not in data, (path, marker)
    _signed_into_every_registry(homes, report, tmp_path)


def _signed_into_every_registry(
    homes: list[NodeHome], report: dict[str, Any], tmp_path: Path
) -> None:
    """Every member wrote the same model; the model owner signs one, every node verifies it."""
    bundles = [Path(report["bundles"][home.site_id]) for home in homes]
    models = {(b / "model.txt").read_bytes() for b in bundles}
    metrics = {(b / "metrics.json").read_bytes() for b in bundles}
    assert len(models) == 1 and len(metrics) == 1
    assert json.loads(metrics.pop())["auc"] == report["rounds"][-1]["evaluation"]["auc"]
    owner = Identity.generate("bureau-models")
    signed = tmp_path / "signed"
    shutil.copytree(bundles[0], signed)
    sign_bundle(signed, owner)
    for home in homes:
        home.trust_owner(owner.public)
        pushed = registry.push(operator(home, "models"), signed)
        registry.activate(operator(home, "models"), pushed.bundle_id)
        active = registry.active(operator(home, "models"))
        assert active is not None and active.metadata["members"] == sorted(SITES)
