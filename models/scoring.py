"""Scoring with a verified bundle: model flags (rule_id ``model``) with their top reasons.

Every settlement is scored; those at or above the bundle's threshold are flagged, and only for
them LightGBM computes feature contributions (SHAP values, ``pred_contrib``) — the costly part —
to name the three features that pushed the score up most.
"""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from fedrisk.models.bundle import Bundle
from fedrisk.models.features import feature_matrix

RULE_ID = "model"
SEVERITY = "warn"  # a model flag asks for a review; it never blocks on its own
TOP_REASONS = 3


def model_flags(
    features: pa.Table, bundle: Bundle, booster: lgb.Booster, kb_version: str, pack_version: str
) -> pa.Table:
    """The model flags of the settlements in ``features`` (the rule_flags columns)."""
    matrix = feature_matrix(features, bundle.spec)
    scores = np.asarray(booster.predict(matrix), np.float64) if len(matrix) else np.empty(0)
    hit = np.flatnonzero(scores >= bundle.threshold)
    evidence = [
        json.dumps(
            {
                "model": bundle.bundle_id,
                "score": round(float(scores[row]), 4),
                "threshold": round(bundle.threshold, 4),
                "reasons": why,
            },
            ensure_ascii=False,
        )
        for row, why in zip(hit, reasons(booster, matrix[hit], bundle), strict=True)
    ]
    n = len(hit)
    return pa.table(
        {
            "site_id": features.column("site_id").take(hit),
            "settlement_id": features.column("settlement_id").take(hit),
            "rule_id": pa.array([RULE_ID] * n, pa.string()),
            "score": pa.array(scores[hit], pa.float64()),
            "severity": pa.array([SEVERITY] * n, pa.string()),
            "evidence": pa.array(evidence, pa.string()),
            "kb_version": pa.array([kb_version] * n, pa.string()),
            "rule_pack_version": pa.array([pack_version] * n, pa.string()),
        }
    )


def reasons(
    booster: lgb.Booster, rows: NDArray[np.float64], bundle: Bundle
) -> list[list[dict[str, object]]]:
    """For each row, the features with the largest positive contributions to its score."""
    if len(rows) == 0:
        return []
    contributions = np.asarray(booster.predict(rows, pred_contrib=True), np.float64)
    return [top_reasons(r, c, bundle) for r, c in zip(rows, contributions, strict=True)]


def top_reasons(
    row: NDArray[np.float64], contributions: NDArray[np.float64], bundle: Bundle
) -> list[dict[str, object]]:
    """The row's features with the largest positive contributions (``contributions`` as
    ``pred_contrib`` gives them: one a feature, then the expected value)."""
    names = bundle.spec.names
    top = np.argsort(-contributions[:-1], kind="stable")[:TOP_REASONS]
    return [
        {
            "feature": names[i],
            "value": None if np.isnan(row[i]) else round(float(row[i]), 4),
            "contribution": round(float(contributions[i]), 4),
        }
        for i in top
        if contributions[i] > 0
    ]
