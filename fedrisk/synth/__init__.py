"""Synthetic contract-v1 data: a federation of sites with clean claims, rule incidents, model-only
fraud and malformed rows, plus the truth of what every rule must flag.

``generate_dataset(out, sites, settlements, seed)`` is the entry point (used by
``fedrisk data generate``); it returns a ``DatasetSummary``.
"""

from __future__ import annotations

from fedrisk.synth.generate import generate_dataset
from fedrisk.synth.summary import DatasetSummary, RuleSummary, SiteSummary

__all__ = ["DatasetSummary", "RuleSummary", "SiteSummary", "generate_dataset"]
