"""How the CLI shows cross-site matching: live progress from the run's stream, and per-site
results from the coordinator's report (counts and sizes only: that is all it has)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rich.progress import Progress, TaskID
from rich.table import Table

from fedrisk.cli.render import console

# What coordinator/serverapp.py logs at each step (the jobs of a run go through them together).
_STEP = re.compile(r"matching \((\S+)\): (\w+)( \S+)?$")
STEPS = ("tokens", "values", "sums", "results")


def follow_matching(line: str, bar: Progress, task: TaskID) -> None:
    """Echo one line of the run's stream, and move the bar on a matching step."""
    step = _STEP.search(line)
    if step is None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    window, name, job = step.groups()
    done = STEPS.index(name) if name in STEPS else 0
    what = f"{name}{job or ''} ({window})"
    bar.update(task, completed=done, total=len(STEPS), description=f"matching: {what}")


def matching_table(reports: Sequence[Mapping[str, Any]]) -> Table:
    """One row per job and site: tokens sent, shared groups, settlements flagged, traffic."""
    table = Table(title="cross-site matching: what each site sent and flagged")
    for column in (
        "job",
        "window",
        "site",
        "tokens",
        "shared groups",
        "flagged",
        "sent",
        "received",
    ):
        table.add_column(column, justify="left" if column in ("job", "window", "site") else "right")
    for report in reports:
        sites = sorted({*report["tokens"], *report["refused"], *report["dropped"]})
        for site in sites:
            if site in report["refused"]:
                note = f"refused: {report['refused'][site]}"
                table.add_row(report["job"], report["window"], site, note, "", "", "", "")
                continue
            table.add_row(
                report["job"],
                report["window"],
                site,
                f"{report['tokens'].get(site, 0):,}",
                f"{report['shared_groups']:,}",
                f"{report['flagged'].get(site, 0):,}"
                if site not in report["dropped"]
                else "dropped",
                _size(report["bytes_in"].get(site, 0)),
                _size(report["bytes_out"].get(site, 0)),
            )
    return table


def _size(count: int) -> str:
    return f"{count / 1024:,.0f} KiB" if count >= 1024 else f"{count} B"
