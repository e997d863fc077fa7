"""Where a job's decisions go: contract flags in ``HOME/matching/<job>-<window>.jsonl``.

Screening joins these files into its own flags (``fedrisk node screen``); PreCheck reads them as
the patient's cross-site context. A file is replaced whole by the job's next run over the
same window, atomically: a crashed write leaves the previous results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from fedrisk.node.access import SiteAccess
from fedrisk.node.matching.job import Found

FOLDER = "matching"


def results_file(root: Path, job: str, window: str) -> Path:
    return root / FOLDER / f"{job}-{window}.jsonl"


def write_flags(access: SiteAccess, job: str, window: str, found: Sequence[Found]) -> Path:
    """The flags of ``found`` (one per settlement), written through the audited door."""
    home = access.home
    pack, kb = home.rule_pack(), home.knowledge_base()
    severity = pack.rules[job].severity
    first: dict[str, Found] = {}
    for item in found:
        first.setdefault(item.settlement_id, item)
    lines = [
        json.dumps(
            {
                "site_id": home.site_id,
                "settlement_id": settlement,
                "rule_id": job,
                "score": 1.0,
                "severity": severity,
                "evidence": item.evidence,
                "kb_version": kb.version,
                "rule_pack_version": pack.version,
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        for settlement, item in sorted(first.items())
    ]
    out = results_file(home.root, job, window)
    return access.write("flags", len(lines), lambda: _replace(out, lines))


def results_files(root: Path) -> list[Path]:
    """Every job's latest results at the node whose home is ``root``."""
    return sorted((root / FOLDER).glob("*.jsonl"))


def _replace(out: Path, lines: list[str]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, out)
    return out
