"""What a generation run reports back: per-site counts and per-rule incident counts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SiteSummary:
    """Data rows written for one site (malformed rows included) and the malformed-row count."""

    site_id: str
    site_type: str
    settlements: int
    lines: int
    labels: int
    malformed: int


@dataclass(frozen=True)
class RuleSummary:
    """Incidents injected for one rule, the settlements they involve (truth rows), and why the
    rule got no incident when ``skipped`` is set."""

    rule_id: str
    incidents: int
    settlements: int
    skipped: str | None = None


@dataclass(frozen=True)
class DatasetSummary:
    """The result of ``generate_dataset``.

    Attributes
    ----------
    out
        The output folder.
    seed
        The seed the data was generated from.
    sites
        Per site, in site order.
    rules
        Per rule id of the contract, in contract order.
    fraud
        Model-only fraud settlements per kind (label ``other``, no truth row).
    edge_cases
        Clean settlements placed exactly at a rule's limit (not in the truth file).
    truth_rows
        Rows of ``truth.csv``.
    """

    out: Path
    seed: int
    sites: tuple[SiteSummary, ...]
    rules: tuple[RuleSummary, ...]
    fraud: tuple[tuple[str, int], ...]
    edge_cases: int
    truth_rows: int

    @property
    def incident_counts(self) -> dict[str, int]:
        """Incidents per rule id."""
        return {r.rule_id: r.incidents for r in self.rules}

    @property
    def skipped(self) -> dict[str, str]:
        """Rules without incidents, with the reason."""
        return {r.rule_id: r.skipped for r in self.rules if r.skipped is not None}
