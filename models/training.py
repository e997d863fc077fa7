"""LightGBM training of a binary risk model, with a held-out evaluation.

The rows are split three ways, stratified by label and seeded: 20% held out for the reported
metrics (never seen in training), and of the rest 20% for early stopping (boosting stops when
the validation AUC has not improved for 50 rounds) and for choosing the flagging threshold
(best F1). What the report says is therefore what to expect on new settlements of the same
kind — on this node's case mix, not necessarily another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from fedrisk.models.metrics import average_precision, best_f1_threshold, roc_auc

HELD_OUT = 0.2
VALIDATION = 0.2
PARAMS: dict[str, object] = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "num_threads": 2,
    "verbose": -1,
    "deterministic": True,
}
MAX_ROUNDS = 1000
PATIENCE = 50


@dataclass
class Trained:
    """A trained booster and how it did on rows it never saw."""

    booster: lgb.Booster
    threshold: float
    metrics: dict[str, float]
    held_out: NDArray[np.int64]  # row indices of the held-out rows
    held_out_scores: NDArray[np.float64]
    extra: dict[str, float] = field(default_factory=dict)


def split(labels: NDArray[np.int64], seed: int) -> tuple[NDArray[np.int64], ...]:
    """Row indices for training, validation and held-out, each stratified by label."""
    rng = np.random.default_rng(seed)
    parts: list[list[NDArray[np.int64]]] = [[], [], []]
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == value))
        held = round(len(rows) * HELD_OUT)
        valid = round((len(rows) - held) * VALIDATION)
        parts[2].append(rows[:held])
        parts[1].append(rows[held : held + valid])
        parts[0].append(rows[held + valid :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def train(
    features: NDArray[np.float64], labels: NDArray[np.int64], names: list[str], seed: int = 7
) -> Trained:
    """Train with early stopping; report AUC and PR-AUC (average precision) on held-out rows."""
    if len(np.unique(labels)) != 2:
        raise ValueError("training needs both labels, 0 and 1, among the rows")
    fit, valid, held = split(labels, seed)
    params = {**PARAMS, "seed": seed}
    train_set = lgb.Dataset(features[fit], labels[fit], feature_name=names, free_raw_data=False)
    valid_set = lgb.Dataset(features[valid], labels[valid], reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
    )
    threshold = best_f1_threshold(labels[valid], _predict(booster, features[valid]))
    scores = _predict(booster, features[held])
    metrics = {
        "auc": roc_auc(labels[held], scores),
        "pr_auc": average_precision(labels[held], scores),
        "rounds": float(booster.best_iteration or booster.current_iteration()),
        "rows_train": float(len(fit)),
        "rows_validation": float(len(valid)),
        "rows_held_out": float(len(held)),
        "positives_held_out": float(labels[held].sum()),
    }
    return Trained(booster, threshold, metrics, held, scores)


def _predict(booster: lgb.Booster, features: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(booster.predict(features, num_iteration=booster.best_iteration), np.float64)
