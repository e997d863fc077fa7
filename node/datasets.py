"""The datasets of a node and their fields: what an access policy can grant.

A policy that names a dataset or field not listed here is refused, so a typo can never grant
(or silently fail to grant) access. ``export.*`` are the HIS exports as read at ingest, raw
identifiers included; the others are what the node keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fedrisk.models.schema import LABEL_COLUMNS, LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.node.auditlog import ENTRY_FIELDS
from fedrisk.node.desensitize import ANALYTIC_SETTLEMENT_COLUMNS

ALL_FIELDS: Final = "*"

DATASETS: Final[dict[str, tuple[str, ...]]] = {
    "export.settlements": SETTLEMENT_COLUMNS,
    "export.lines": LINE_COLUMNS,
    "export.labels": LABEL_COLUMNS,
    # The analytic store (see node/store.py): desensitized, no raw identifier.
    "settlements": (*ANALYTIC_SETTLEMENT_COLUMNS[:2], "batch_id", *ANALYTIC_SETTLEMENT_COLUMNS[2:]),
    "lines": ("site_id", "settlement_id", "line_no", "batch_id", *LINE_COLUMNS[3:]),
    "labels": ("site_id", "settlement_id", "batch_id", "label", "violation_type"),
    "batches": (
        "batch_id",
        "content_sha256",
        "ingested_at",
        "files",
        "rows_read",
        "rows_accepted",
        "rows_rejected",
    ),
    "rejects": ("file", "row", "settlement_id", "field", "reason", "other_fields"),
    # The identity vault: raw identifiers behind pseudonyms.
    "vault": ("kind", "pseudonym", "identifier"),
    "flags": (
        "site_id",
        "settlement_id",
        "rule_id",
        "score",
        "severity",
        "evidence",
        "kb_version",
        "rule_pack_version",
    ),
    "audit": ENTRY_FIELDS,
    # Claims sent to PreCheck before an order: read once, never stored.
    "claims": (*SETTLEMENT_COLUMNS, "lines"),
    # The model registry: signed bundles pushed to this node, and which one is active.
    "models": ("bundle_id", "owner", "model", "features", "metrics", "metadata", "active"),
    # What the node exchanges with the federation: the epoch it holds (secret, members, HE
    # context) and what it sends in rounds (sealed trees, evaluation histograms).
    "federation": ("epoch", "members", "trees", "evaluation"),
}


def expand(dataset: str, fields: Sequence[str]) -> tuple[str, ...]:
    """The fields meant by ``fields`` (``["*"]`` is every field of the dataset)."""
    return DATASETS[dataset] if list(fields) == [ALL_FIELDS] else tuple(fields)
