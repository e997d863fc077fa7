"""``fedrisk model train --home``: a risk model from the node's own labelled settlements.

Reads, through the access gate (purpose ``training``), the fields the rules and the features
need and the labels; computes the features exactly as screening does; trains and writes an
unsigned bundle. The model owner then signs it (``fedrisk model sign``).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
from numpy.typing import NDArray

from fedrisk.models.bundle import write_bundle
from fedrisk.models.features import READS as FEATURE_READS
from fedrisk.models.features import SPEC, claim_features, feature_matrix
from fedrisk.models.metrics import roc_auc
from fedrisk.models.rules.engine import evaluate
from fedrisk.models.training import train
from fedrisk.node.access import SiteAccess
from fedrisk.node.claims import attach_claims

LABEL_READS = {"labels": ("site_id", "settlement_id", "label", "violation_type")}
MODEL_ONLY = "other"  # the violation type no rule catches


@dataclass(frozen=True)
class TrainReport:
    bundle: Path
    metrics: dict[str, float]
    rows: int
    positives: int


@dataclass(frozen=True)
class Labelled:
    """The node's labelled settlements as features (SPEC order), with what training reports."""

    table: pa.Table  # the feature columns, ``label`` and ``kind`` (the violation type)
    features: NDArray[np.float64]
    labels: NDArray[np.int64]
    window: tuple[object, object] | None  # earliest and latest settle_time


def labelled_features(access: SiteAccess) -> Labelled:
    """Every labelled settlement's features, computed exactly as screening computes them (read
    through the access gate, purpose ``training``)."""
    kb, pack = access.home.knowledge_base(), access.home.rule_pack()
    with closing(duckdb.connect()) as db:
        attach_claims(access, db, {**FEATURE_READS, **LABEL_READS})
        evaluate(db, kb, pack)
        db.register("features", claim_features(db))
        table = db.sql(
            """SELECT f.*, l.label::BIGINT AS label, coalesce(l.violation_type, '') AS kind
            FROM features f JOIN labels l USING (site_id, settlement_id)
            ORDER BY site_id, settlement_id"""
        ).to_arrow_table()
        window = db.execute("SELECT min(settle_time), max(settle_time) FROM settlements").fetchone()
    labels = table.column("label").to_numpy().astype(np.int64)
    return Labelled(
        table, feature_matrix(table, SPEC), labels, (window[0], window[1]) if window else None
    )


def train_node(access: SiteAccess, out: Path, seed: int = 7) -> TrainReport:
    """Train on every labelled settlement of the node and write an unsigned bundle to ``out``."""
    home = access.home
    kb, pack = home.knowledge_base(), home.rule_pack()
    labelled = labelled_features(access)
    table, labels, window = labelled.table, labelled.labels, labelled.window
    trained = train(labelled.features, labels, list(SPEC.names), seed)
    kinds = np.array(table.column("kind").to_pylist())[trained.held_out]
    held_labels = labels[trained.held_out]
    model_only = (held_labels == 0) | (kinds == MODEL_ONLY)
    if (kinds[model_only] == MODEL_ONLY).any():
        trained.metrics["auc_model_only"] = roc_auc(
            (kinds[model_only] == MODEL_ONLY).astype(np.int64), trained.held_out_scores[model_only]
        )
    metadata: dict[str, Any] = {
        "source": f"node {home.site_id}",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_window": [str(window[0]), str(window[1])] if window else None,
        "kb_version": kb.version,
        "rule_pack_version": pack.version,
        "feature_spec": SPEC.version,
        "label": "label (labels.csv)",
        "rows": table.num_rows,
        "positives": int(labels.sum()),
        "seed": seed,
        "lightgbm": version("lightgbm"),
    }
    write_bundle(out, trained, SPEC, metadata, held_labels)
    return TrainReport(out, trained.metrics, table.num_rows, int(labels.sum()))


def write_feature_table(access: SiteAccess, out: Path) -> int:
    """The labelled settlements' features and label as a numeric CSV (no identifiers, no
    settlement ids: the table ``fedrisk model train --table`` and federated runs read); the
    number of rows written."""
    labelled = labelled_features(access)
    columns = {name: labelled.features[:, i] for i, name in enumerate(SPEC.names)}
    table = pa.table({**columns, "label": labelled.labels})
    out.parent.mkdir(parents=True, exist_ok=True)
    pv.write_csv(table, out)
    return int(table.num_rows)
