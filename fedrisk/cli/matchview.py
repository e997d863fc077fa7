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
    """One row per site, one column per job: the site's settlements flagged (or why it took no
    part), then each job's shared groups; tokens and traffic per site in the caption. Counts
    and sizes only: that is all the coordinator has."""
    sites = sorted({s for r in reports for s in (*r["tokens"], *r["refused"], *r["dropped"])})
    window = ", ".join(sorted({str(r["window"]) for r in reports}))
    table = Table(title=f"cross-site matching (window {window}): settlements flagged per site")
    table.add_column("site")
    for report in reports:
        table.add_column(str(report["job"]).replace("_", " "), justify="right")
    for site in sites:
        table.add_row(site, *[_cell(report, site) for report in reports])
    table.add_row("shared groups", *[f"{r['shared_groups']:,}" for r in reports], style="dim")
    table.caption = "; ".join(
        f"{site} sent {sum(r['tokens'].get(site, 0) for r in reports):,} tokens and "
        f"{_size(sum(r['bytes_in'].get(site, 0) for r in reports))}, received "
        f"{_size(sum(r['bytes_out'].get(site, 0) for r in reports))}"
        for site in sites
    )
    return table


def _cell(report: Mapping[str, Any], site: str) -> str:
    if site in report["refused"]:
        return "refused"
    if site in report["dropped"]:
        return "dropped"
    return f"{report['flagged'].get(site, 0):,}"


def _size(count: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} B"
