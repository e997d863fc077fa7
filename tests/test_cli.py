"""The console script as a user meets it: help everywhere, clear errors, the demo end to end."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.node.home import open_home
from tests.conftest import DEMO_ARGS, DemoRun
from tests.nodes import counts

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["node"],
        ["data"],
        ["node", "init"],
        ["node", "ingest"],
        ["node", "screen"],
        ["data", "generate"],
        ["demo"],
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_init_then_ingest_prints_counts(sample_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "h"
    site = sample_dir / "H33010000"
    init = runner.invoke(app, ["node", "init", "--home", str(home), "--site-id", "H33010000"])
    assert init.exit_code == 0, init.output
    args = ["--settlements", str(site / "settlements.csv"), "--lines", str(site / "lines.csv")]
    first = runner.invoke(app, ["node", "ingest", "--home", str(home), *args])
    assert first.exit_code == 0, first.output
    assert "76" in first.output and "157" in first.output
    again = runner.invoke(app, ["node", "ingest", "--home", str(home), *args])
    assert again.exit_code == 0 and "already ingested" in again.output
    status = runner.invoke(app, ["node", "status", "--home", str(home)])
    assert "76 settlements" in status.output


def test_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["node", "ingest", "--home", str(tmp_path), "--settlements", "s", "--lines", "l"]
    )
    assert result.exit_code == 2
    assert "not a node home" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--job", "all", "--window", "2026-13"], "expected 'all' or a month YYYY-MM"),
        (["--job", "duplicate_trace_code,nope"], "unknown job"),
    ],
)
def test_match_refuses_a_bad_job_or_window_before_starting(
    tmp_path: Path, option: list[str], message: str
) -> None:
    args = ["federation", "match", "--superlink", "x", "--state-dir", str(tmp_path), *option]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_missing_column_refuses_the_file(sample_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "h"
    runner.invoke(app, ["node", "init", "--home", str(home), "--site-id", "H33010000"])
    site = sample_dir / "H33010000"
    rows = (site / "settlements.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    drop = header.index("gender")
    cut = [",".join(f for i, f in enumerate(r.split(",")) if i != drop) for r in rows]
    (tmp_path / "s.csv").write_text("\n".join(cut) + "\n", encoding="utf-8")
    files = ["--settlements", str(tmp_path / "s.csv"), "--lines", str(site / "lines.csv")]
    result = runner.invoke(app, ["node", "ingest", "--home", str(home), *files])
    assert result.exit_code == 2
    assert "missing column(s) gender" in result.output
    assert counts(open_home(home)).settlements == 0


@pytest.mark.federation
def test_demo_generates_ingests_trains_over_flower_and_screens(
    demo_run: DemoRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo_run.root)  # a relative --workdir, as the README's demo uses
    work, output = demo_run.workdir, demo_run.output
    assert demo_run.exit_code == 0, output
    homes = sorted(p.parent.name for p in work.glob("*/config.toml"))
    assert len(homes) == 3
    for site in homes:
        assert site in output
        assert counts(open_home(work / site)).settlements > 500
        flags = (work / site / "flags.jsonl").read_text(encoding="utf-8")
        assert '"rule_id":"model"' in flags.replace(" ", "")  # the federated model screened
    assert "federated training over Flower" in output and "final" in output
    assert list((work / "federation").glob("rounds-*.png"))
    assert "screening: flags per rule and site" in output
    assert "cross-site matching" in output
    screened = "".join((work / s / "flags.jsonl").read_text(encoding="utf-8") for s in homes)
    for job in ("duplicate_trace_code", "monthly_pharmacy_spend", "prescriber_outlier"):
        assert f'"{job}"' in screened.replace(" ", "").replace('"rule_id":', ""), job
    _nothing_readable_reached_the_superlink(work)
    again = runner.invoke(app, [*DEMO_ARGS, "--workdir", str(work)])
    assert again.exit_code == 0 and again.output.count("already ingested") >= 3


def _nothing_readable_reached_the_superlink(work: Path) -> None:
    """Every message the SuperLink relayed (its database: training and matching) and everything
    the coordinator kept: no tree, no raw or pseudonymous patient ID, no raw pharmacist ID, no
    trace code, no amount."""
    import duckdb

    secrets: set[bytes] = {b"Tree=", b"threshold=", b"leaf_value="}
    for site in (p.parent for p in work.glob("*/config.toml")):
        with (work / "data" / site.name / "settlements.csv").open(encoding="utf-8") as handle:
            for row in itertools.islice(csv.DictReader(handle), 200):
                secrets |= {row["patient_id"].encode(), row["pharmacist_id"].encode()}
                if len(row["total_amount"]) >= 7:  # e.g. 1234.56: shorter ones occur by chance
                    secrets.add(row["total_amount"].encode())
        with duckdb.connect(str(site / "store.duckdb"), read_only=True) as db:
            for pseudonym, trace in db.execute(
                "SELECT s.patient_pseudonym, l.trace_code FROM settlements s JOIN lines l"
                " USING (settlement_id) WHERE l.trace_code IS NOT NULL LIMIT 200"
            ).fetchall():
                secrets |= {str(pseudonym).encode(), str(trace).encode()}
    secrets.discard(b"")
    # SQLite keeps recent writes in the -wal file: read the database with all its files.
    received = sorted((work / "federation").glob("flower*/superlink.db*"))
    assert {p.parent.name for p in received} == {"flower", "flower-matching"}
    relayed = b"".join(path.read_bytes() for path in received)
    assert relayed.count(b"FRS1") > 10  # the capture holds the signed messages it relayed
    received += [p for p in (work / "federation" / "coordinator").rglob("*") if p.is_file()]
    for path in received:
        data = path.read_bytes()
        leaked = sorted(s.decode() for s in secrets if s and s in data)
        assert not leaked, (path, leaked[:5])


@pytest.mark.federation  # two sites: cross-site matching runs over a local federation
def test_demo_takes_contract_data_from_a_folder(sample_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--data", str(sample_dir), "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "H33010000" / "config.toml").is_file()
    assert (tmp_path / "P33010701" / "config.toml").is_file()
    assert "birth_date" in result.output  # the sample's one malformed row, by field
    assert "federated training skipped" in result.output  # the sample has no labels
    assert "settlements flagged per site" in result.output


def test_screen_writes_flags_and_a_table_per_rule(sample_dir: Path, tmp_path: Path) -> None:
    home, site = tmp_path / "h", sample_dir / "H33010000"
    runner.invoke(app, ["node", "init", "--home", str(home), "--site-id", "H33010000"])
    files = ["--settlements", str(site / "settlements.csv"), "--lines", str(site / "lines.csv")]
    runner.invoke(app, ["node", "ingest", "--home", str(home), *files])
    out = tmp_path / "flags.jsonl"
    result = runner.invoke(app, ["node", "screen", "--home", str(home), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "gender_conflict" in result.output and "cross-site" in result.output
    flags = out.read_text(encoding="utf-8").splitlines()
    assert f"{len(flags)} flags" in result.output
    backwards = ["--from", "2026-03-01", "--to", "2026-02-01"]
    bad = runner.invoke(app, ["node", "screen", "--home", str(home), "--out", str(out), *backwards])
    assert bad.exit_code == 2 and "is after" in bad.output
