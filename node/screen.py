"""Screening (事中审核 / 事后监管): every enabled single-site rule over the node's whole store.

The store is attached read-only to an in-memory DuckDB, the rule engine evaluates every rule
in SQL over all stored history, and the flags of the settlements settled in the requested
window are written as data contract v1 flags (JSON Lines), together with this node's latest
cross-site matching results (``HOME/matching/``, :mod:`fedrisk.node.matching`). Settlements
refused at ingest have no trustworthy settle time: their ``data_quality`` flags are written
whatever the window.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import duckdb

from fedrisk.models.bundle import Bundle
from fedrisk.models.features import READS as FEATURE_READS
from fedrisk.models.features import claim_features
from fedrisk.models.rules.engine import evaluate, rules_to_run
from fedrisk.models.rules.pack import RulePack
from fedrisk.models.scoring import RULE_ID, model_flags
from fedrisk.node import registry
from fedrisk.node.access import SiteAccess
from fedrisk.node.claims import attach_claims
from fedrisk.node.matching.results import results_files
from fedrisk.protos.matching import JOBS

STAGES = ("read", "rules", "model", "write")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScreenReport:
    """What one screening wrote: flags per rule, what was screened, with which versions."""

    out: Path
    counts: dict[str, int]
    settlements: int
    lines: int
    kb_version: str
    rule_pack_version: str
    seconds: float
    model: str | None = None  # the bundle id of the active model, if one scored

    @property
    def flags(self) -> int:
        return sum(self.counts.values())


def screen_node(
    access: SiteAccess,
    out: Path,
    start: date | None = None,
    end: date | None = None,
    pack: RulePack | None = None,
    progress: Progress | None = None,
) -> ScreenReport:
    """Screen the node's store; write the flags of settlements settled in [start, end] to out.

    Reads only the fields of :data:`READS`, through ``access`` (policy-checked and audited).
    """
    started = time.perf_counter()
    step = progress or (lambda stage: None)
    step("read")
    home = access.home
    kb = home.knowledge_base()
    pack = pack if pack is not None else home.rule_pack()
    access.require_writes(["flags"])
    bundle = registry.active(access)
    with closing(duckdb.connect()) as db:
        attach_claims(access, db, FEATURE_READS if bundle else None)
        step("rules")
        evaluate(db, kb, pack)
        _cross_site(access, db, pack)
        if bundle is not None:
            step("model")
            _score(db, bundle, kb.version, pack.version)
        step("write")
        scope = _scope(start, end)
        db.execute(f"CREATE TEMP TABLE flags AS {_flags_in_scope(scope)}")
        counts = dict.fromkeys([*rules_to_run(pack), *([RULE_ID] if bundle else [])], 0)
        counts.update(_counts(db))
        access.write("flags", sum(counts.values()), lambda: _write_flags(db, out))
        settlements, lines = _screened(db, scope)
    seconds = time.perf_counter() - started
    model = bundle.bundle_id if bundle else None
    return ScreenReport(out, counts, settlements, lines, kb.version, pack.version, seconds, model)


def _score(db: duckdb.DuckDBPyConnection, bundle: Bundle, kb: str, pack: str) -> None:
    """Add the model's flags to ``rule_flags`` (features from the same store as the rules)."""
    flags = model_flags(claim_features(db), bundle, bundle.booster(), kb, pack)
    db.register("model_flags", flags)
    db.execute(
        "INSERT INTO rule_flags SELECT * REPLACE (evidence::JSON AS evidence) FROM model_flags"
    )


def _cross_site(access: SiteAccess, db: duckdb.DuckDBPyConnection, pack: RulePack) -> None:
    """Add this node's latest cross-site matching flags of the rules the pack enables."""
    files = results_files(access.home.root)
    enabled = [r for r in JOBS if pack.enabled(r)]
    if not files or not enabled:
        return
    paths = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    rules = ", ".join(f"'{rule}'" for rule in enabled)
    insert = f"""
    INSERT INTO rule_flags
    SELECT site_id, settlement_id, rule_id, score, severity, evidence, kb_version,
        rule_pack_version
    FROM read_json([{paths}], columns = {{
        site_id: 'VARCHAR', settlement_id: 'VARCHAR', rule_id: 'VARCHAR', score: 'DOUBLE',
        severity: 'VARCHAR', evidence: 'JSON', kb_version: 'VARCHAR', rule_pack_version: 'VARCHAR'
    }}) AS m
    WHERE rule_id IN ({rules}) AND NOT EXISTS (  -- a box also settled twice here: one flag
        SELECT 1 FROM rule_flags f
        WHERE f.settlement_id = m.settlement_id AND f.rule_id = m.rule_id
    )
    """
    access.read("flags", ["*"], lambda: db.execute(insert).fetchall(), rows=lambda r: r[0][0])


def _scope(start: date | None, end: date | None) -> str | None:
    """A SQL condition on ``s.settle_time`` for the window (NULL: refused at ingest)."""
    low = datetime.combine(start, clock()) if start else None
    high = datetime.combine(end + timedelta(days=1), clock()) if end else None
    conditions = []
    if low is not None:
        conditions.append(f"s.settle_time >= TIMESTAMP '{low.isoformat(sep=' ')}'")
    if high is not None:
        conditions.append(f"s.settle_time < TIMESTAMP '{high.isoformat(sep=' ')}'")
    return "(" + " AND ".join(conditions) + ")" if conditions else None


def _flags_in_scope(scope: str | None) -> str:
    if scope is None:
        return "SELECT * FROM rule_flags"
    return f"""
    SELECT f.* FROM rule_flags f
    LEFT JOIN settlements s ON s.site_id = f.site_id AND s.settlement_id = f.settlement_id
    WHERE s.settle_time IS NULL OR {scope}
    """


def _write_flags(db: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Write the flags (sorted by settlement and rule) atomically: all of them or none."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    target = str(partial).replace("'", "''")
    db.execute(
        "COPY (SELECT * FROM flags ORDER BY site_id, settlement_id, rule_id) "
        f"TO '{target}' (FORMAT JSON)"
    )
    os.replace(partial, out)


def _counts(db: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = db.execute("SELECT rule_id, count(*) FROM flags GROUP BY rule_id").fetchall()
    return {str(rule_id): int(n) for rule_id, n in rows}


def _screened(db: duckdb.DuckDBPyConnection, scope: str | None) -> tuple[int, int]:
    """Settlements and fee lines in the window."""
    if scope is None:
        queries = ("SELECT count(*) FROM settlements", "SELECT count(*) FROM lines")
    else:
        queries = (
            f"SELECT count(*) FROM settlements s WHERE {scope}",
            f"""SELECT count(*) FROM lines l SEMI JOIN settlements s
            ON s.site_id = l.site_id AND s.settlement_id = l.settlement_id AND {scope}""",
        )
    counts = [db.execute(q).fetchone() for q in queries]
    return int(counts[0][0]) if counts[0] else 0, int(counts[1][0]) if counts[1] else 0
