"""The auditor's commands (query, head, prove, check-proof); node identity and passphrase."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.crypto.identity import PublicIdentity

runner = CliRunner()


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def node(tmp_path: Path, sample_dir: Path) -> Path:
    """A node with the sample hospital ingested and screened, and one denied attempt."""
    home = tmp_path / "node"
    site = sample_dir / "H33010000"
    files = ("--settlements", site / "settlements.csv", "--lines", site / "lines.csv")
    for args in (
        ("node", "init", "--home", home, "--site-id", "H33010000"),
        ("node", "ingest", "--home", home, *files),
        ("node", "screen", "--home", home, "--out", tmp_path / "flags.jsonl"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    denied = cli("node", "screen", "--home", home, "--out", tmp_path / "x", "--as", "auditor")
    assert denied.exit_code == 2 and "access denied" in denied.output
    return home


def _query(home: Path, *filters: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["audit", "query", "--home", str(home), "--json", *filters])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_query_filters_by_purpose_decision_and_actor(node: Path) -> None:
    everything = _query(node)
    assert {e["purpose"] for e in everything} == {"ingest", "screening"}
    denied = _query(node, "--decision", "denied")
    assert len(denied) == 1 and denied[0]["role"] == "auditor"
    assert _query(node, "--purpose", "screening", "--decision", "allowed")
    assert _query(node, "--actor", "nobody-at-all") == []
    # the queries themselves were audited reads of the log
    after = _query(node, "--purpose", "audit")
    assert len(after) >= 4 and all(e["dataset"] == "audit" for e in after)


def test_query_time_window(node: Path) -> None:
    assert _query(node, "--since", "2000-01-01", "--until", "2000-01-02") == []
    assert len(_query(node, "--since", "2000-01-01", "--purpose", "ingest")) >= 8


def test_query_table_shows_the_denial(node: Path) -> None:
    result = runner.invoke(
        app, ["audit", "query", "--home", str(node), "--decision", "denied"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    assert "denied" in result.output and "auditor" in result.output


def test_an_auditor_without_a_grant_cannot_query(node: Path) -> None:
    result = runner.invoke(app, ["audit", "query", "--home", str(node), "--as", "operator"])
    assert result.exit_code == 2 and "access denied" in result.output
    assert _query(node, "--decision", "denied", "--purpose", "audit")


def test_prove_and_check_an_entry(node: Path, tmp_path: Path) -> None:
    proof_file = tmp_path / "proof.json"
    result = runner.invoke(
        app, ["audit", "prove", "--home", str(node), "--index", "3", "--out", str(proof_file)]
    )
    assert result.exit_code == 0, result.output
    identity = node / "identity.json"
    checked = runner.invoke(
        app, ["audit", "check-proof", str(proof_file), "--identity", str(identity)]
    )
    assert checked.exit_code == 0 and "proof holds" in checked.output, checked.output
    proof = json.loads(proof_file.read_text())
    proof["entry"] = proof["entry"].replace('"seq":3', '"seq":4')
    proof_file.write_text(json.dumps(proof))
    forged = runner.invoke(
        app, ["audit", "check-proof", str(proof_file), "--identity", str(identity)]
    )
    assert forged.exit_code == 1 and "does not hold" in forged.output


def test_prove_refuses_an_index_past_the_log(node: Path) -> None:
    result = runner.invoke(app, ["audit", "prove", "--home", str(node), "--index", "100000"])
    assert result.exit_code == 2 and "no entry 100000" in result.output


def test_a_kept_head_is_checked_with_against(node: Path, tmp_path: Path) -> None:
    kept = tmp_path / "head.json"
    assert (
        runner.invoke(app, ["audit", "head", "--home", str(node), "--out", str(kept)]).exit_code
        == 0
    )
    _query(node)  # the log grows
    verified = runner.invoke(app, ["audit", "verify", "--home", str(node), "--against", str(kept)])
    assert verified.exit_code == 0 and "intact" in verified.output, verified.output


def test_verify_with_someone_elses_identity_fails(node: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    runner.invoke(app, ["node", "init", "--home", str(other), "--site-id", "H33010000"])
    result = runner.invoke(
        app, ["audit", "verify", "--home", str(node), "--identity", str(other / "identity.json")]
    )
    assert result.exit_code == 1 and "signed head 0" in result.output


def test_node_identity_is_exported_and_private_keys_are_0600(node: Path) -> None:
    result = runner.invoke(app, ["node", "identity", "--home", str(node)])
    assert result.exit_code == 0
    public = PublicIdentity.from_json(json.loads(result.output))
    assert public.site_id == "H33010000"
    for path in (node / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((node / "audit").stat().st_mode) == 0o700


def test_a_passphrase_protected_node_needs_its_passphrase(tmp_path: Path, sample_dir: Path) -> None:
    home = tmp_path / "locked"
    secret = {"FEDRISK_NODE_PASSPHRASE": "correct horse battery"}
    init = ["node", "init", "--home", str(home), "--site-id", "H33010000", "--passphrase"]
    assert runner.invoke(app, init, env=secret).exit_code == 0
    status = ["node", "status", "--home", str(home)]
    refused = runner.invoke(app, status, env={"FEDRISK_NODE_PASSPHRASE": ""})
    assert refused.exit_code == 2 and "passphrase-protected" in refused.output
    wrong = runner.invoke(app, status, env={"FEDRISK_NODE_PASSPHRASE": "wrong"})
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output
    assert runner.invoke(app, status, env=secret).exit_code == 0
