"""``fedrisk bench federated-auc``: federated bagging over real Flower processes vs LightGBM
trained centrally on the union of the same rows, in one run.

The table is split across N nodes (``random``: equal shares; ``skewed``: unequal sizes and
fraud rates, as hospitals and pharmacies differ); every node holds out the same stratified
share for evaluation. Centrally, LightGBM trains on the union of the nodes' training rows with
the bagging parameters and as many boosting iterations as the federated model has rounds ×
trees; both models are scored on the union of the held-out rows. The federated path is the
real one: a SuperLink and N SuperNodes on localhost with TLS and node authentication,
enrollment, ``rounds`` rounds, the final evaluation and the published bundle, whose model is
the one scored here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
from numpy.typing import NDArray

from fedrisk.deploy.local import APP_DIR, ConfigValue, LocalFederation
from fedrisk.models import bagging
from fedrisk.models.features import FeatureSpec
from fedrisk.models.metrics import average_precision, roc_auc
from fedrisk.models.tables import read_feature_table
from fedrisk.models.training import split
from fedrisk.node.home import NodeHome, init_home

HOLDOUT_SEED = 7  # the nodes' own split (fedrisk.node.fedtrain.HOLDOUT_SEED)


@dataclass(frozen=True)
class Part:
    """One node's rows."""

    features: NDArray[np.float64]
    labels: NDArray[np.int64]

    def holdout(self) -> tuple[Part, Part]:
        fit, valid, held = split(self.labels, HOLDOUT_SEED)
        train_rows = np.sort(np.concatenate([fit, valid]))
        return Part(self.features[train_rows], self.labels[train_rows]), Part(
            self.features[held], self.labels[held]
        )


@dataclass(frozen=True)
class Outcome:
    """Both models' scores on the union of the held-out rows, and the federated run's costs."""

    central_auc: float
    central_pr_auc: float
    federated_auc: float
    federated_pr_auc: float
    rows: int
    seconds: float
    round_seconds: list[float]
    bytes_per_node: dict[str, int]  # sent by each node over the whole run
    bytes_to_each_node: int  # relayed to each node over the whole run
    parts: list[tuple[int, int]]  # per node: rows, positives


def split_table(
    features: NDArray[np.float64], labels: NDArray[np.int64], nodes: int, how: str, seed: int
) -> list[Part]:
    """The rows dealt to ``nodes`` nodes, ``random``-ly or ``skewed`` (sizes ∝ 1, 1/2, 1/3 …;
    fraud concentrated at the first nodes)."""
    rng = np.random.default_rng(seed)
    if how == "random":
        owner = rng.permutation(len(labels)) % nodes
    elif how == "skewed":
        size = 1.0 / np.arange(1, nodes + 1)
        fraud = size * np.linspace(2.0, 0.5, nodes)
        owner = np.empty(len(labels), np.int64)
        for value, weights in ((0, size), (1, fraud)):
            rows = np.flatnonzero(labels == value)
            owner[rows] = rng.choice(nodes, size=len(rows), p=weights / weights.sum())
    else:
        raise ValueError(f"--split is random or skewed, not {how!r}")
    return [Part(features[owner == i], labels[owner == i]) for i in range(nodes)]


def run(
    table: Path,
    label: str,
    nodes: int,
    how: str,
    rounds: int,
    trees: int,
    workdir: Path,
    seed: int = 1,
) -> Outcome:
    """Split, train both ways, score both on the same held-out rows."""
    workdir = workdir.resolve()  # the Flower processes run in folders of their own
    features, labels, spec = read_feature_table(table, label)
    parts = split_table(features, labels, nodes, how, seed)
    held = [p.holdout()[1] for p in parts]
    union_x = np.vstack([h.features for h in held])
    union_y = np.concatenate([h.labels for h in held])
    central = _central(parts, spec, rounds * trees, seed)
    central_scores = central.predict(union_x)
    started = time.perf_counter()
    report, model = _federated(parts, spec, label, rounds, trees, workdir)
    seconds = time.perf_counter() - started
    federated_scores = lgb.Booster(model_str=model).predict(union_x)
    rounds_run: list[dict[str, Any]] = report["rounds"]
    trained = [r for r in rounds_run if r["round"] <= rounds]
    sent: dict[str, int] = {}
    for r in rounds_run:
        for site, size in r["bytes_in"].items():
            sent[site] = sent.get(site, 0) + int(size)
    return Outcome(
        central_auc=roc_auc(union_y, central_scores),
        central_pr_auc=average_precision(union_y, central_scores),
        federated_auc=roc_auc(union_y, federated_scores),
        federated_pr_auc=average_precision(union_y, federated_scores),
        rows=len(labels),
        seconds=seconds,
        round_seconds=[float(r["seconds"]) for r in trained],
        bytes_per_node=sent,
        bytes_to_each_node=sum(int(r["bytes_out"]) for r in rounds_run),
        parts=[(len(p.labels), int(p.labels.sum())) for p in parts],
    )


def _central(parts: list[Part], spec: FeatureSpec, iterations: int, seed: int) -> lgb.Booster:
    fits = [p.holdout()[0] for p in parts]
    x = np.vstack([f.features for f in fits])
    y = np.concatenate([f.labels for f in fits])
    params = {**bagging.DEFAULT_PARAMS, "seed": seed, "num_threads": 2}
    dataset = lgb.Dataset(x, y, feature_name=list(spec.names))
    return lgb.train(params, dataset, num_boost_round=iterations)


def _federated(
    parts: list[Part], spec: FeatureSpec, label: str, rounds: int, trees: int, workdir: Path
) -> tuple[dict[str, Any], str]:
    """The real Flower path; the coordinator's report and the published model text."""
    homes = _homes(workdir / "nodes", len(parts))
    configs: list[dict[str, ConfigValue]] = []
    for home, part in zip(homes, parts, strict=True):
        path = workdir / f"{home.site_id}.csv"
        columns = {name: part.features[:, i] for i, name in enumerate(spec.names)}
        pv.write_csv(pa.table({**columns, label: part.labels}), path)
        configs.append({"home": str(home.root), "table": str(path), "label": label})
    state = workdir / "coordinator"
    run_config: dict[str, ConfigValue] = {
        "federation": "bench",
        "run": "auc",
        "rounds": rounds,
        "trees": trees,
        "nodes": len(parts),
        "min-nodes": len(parts),
        "key-creator": homes[0].site_id,
        "state-dir": str(state),
        "round-timeout": 600,
    }
    with LocalFederation(configs, workdir=workdir / "flower") as federation:
        federation.run(APP_DIR, run_config, timeout=600 + 120 * rounds).check()
    report: dict[str, Any] = json.loads((state / "report-auc.json").read_text())
    bundle = Path(str(report["bundles"][homes[0].site_id]))
    model = (bundle / "model.txt").read_text(encoding="utf-8")
    return report, model


def _homes(root: Path, count: int) -> list[NodeHome]:
    homes = [init_home(root / f"N{i + 1:02d}", f"N{i + 1:02d}") for i in range(count)]
    for home in homes:  # the operators exchanged identity files
        for other in homes:
            if other is not home:
                home.trust("federation_member", other.public_identity())
    return homes
