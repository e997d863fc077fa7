"""Everything the stages of the generator share: catalogue, sites, people and the rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedrisk.models.kb import KnowledgeBase
from fedrisk.synth.catalog import Catalog
from fedrisk.synth.population import Population, Staff
from fedrisk.synth.sites import SiteProfile
from fedrisk.synth.tables import Lines, Settlements, Strings

Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: nothing."""


@dataclass
class World:
    """The state of one generation run, filled stage by stage.

    ``rejected`` marks settlement rows that ``malformed`` will break so that ingest rejects them;
    ``reserved`` marks rows taken by an incident, an edge case, fraud or a malformed defect (a
    row takes part in one of those at most); ``fraud`` holds the model-only fraud kind (0 none).
    """

    kb: KnowledgeBase
    catalog: Catalog
    sites: tuple[SiteProfile, ...]
    pop: Population
    staff: Staff
    sett: Settlements
    lines: Lines
    dx: Strings = field(default_factory=Strings)
    drg: Strings = field(default_factory=Strings)
    reserved: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    fraud: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    progress: Progress = no_progress

    def site_rows(self, site: int) -> np.ndarray:
        """Settlement rows of one site (contiguous, in settlement-number order)."""
        return np.flatnonzero(self.sett.site == site)

    def sid(self, row: int) -> str:
        """The ``settlement_id`` of a row."""
        return f"S{int(self.sett.number[row]):08d}"
