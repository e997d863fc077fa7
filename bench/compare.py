"""The table both benchmarks print: fedrisk against its plain reference, per site and in total."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class SiteTimes:
    """Seconds of every repeat for one site, and its fee lines."""

    lines: int = 0
    fedrisk: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Totals:
    """All sites together: fee lines, and the median over repeats of the summed seconds."""

    lines: int
    fedrisk: float
    reference: float


def comparison_table(
    title: str, times: Mapping[str, SiteTimes], repeats: int, per: str, seconds_per: float
) -> tuple[Table, Totals]:
    """Medians per site and the total; rates are fee lines per ``per`` (``seconds_per`` s)."""
    table = Table(title=f"{title} (median of {repeats})")
    columns = ("site", "fee lines", "fedrisk s", f"fedrisk lines/{per}", "reference s")
    for name in (*columns, f"reference lines/{per}", "speed-up"):
        table.add_column(name, justify="left" if name == "site" else "right")
    for site, t in times.items():
        median = (statistics.median(t.fedrisk), statistics.median(t.reference))
        _row(table, site, t.lines, *median, seconds_per)
    totals = Totals(
        sum(t.lines for t in times.values()),
        statistics.median(sum(t.fedrisk[r] for t in times.values()) for r in range(repeats)),
        statistics.median(sum(t.reference[r] for t in times.values()) for r in range(repeats)),
    )
    table.add_section()
    _row(table, "total", totals.lines, totals.fedrisk, totals.reference, seconds_per)
    return table, totals


def _row(
    table: Table, name: str, lines: int, fedrisk: float, reference: float, seconds_per: float
) -> None:
    table.add_row(
        name,
        f"{lines:,}",
        f"{fedrisk:.2f}",
        f"{lines / fedrisk * seconds_per:,.0f}" if fedrisk else "-",
        f"{reference:.2f}",
        f"{lines / reference * seconds_per:,.0f}" if reference else "-",
        f"{reference / fedrisk:.1f}x" if fedrisk else "-",
    )
