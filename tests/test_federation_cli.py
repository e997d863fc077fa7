"""The operators' federation commands against a real local SuperLink: trust, train, rotate,
match, status (the new epoch replaces the old at every node, and training then uses it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.deploy.local import LocalFederation
from fedrisk.node.home import init_home
from fedrisk.protos.matching import JOBS
from tests.test_federation_e2e import _table

pytestmark = pytest.mark.federation
runner = CliRunner()


def test_trust_train_rotate_and_status(tmp_path: Path) -> None:
    homes = [init_home(tmp_path / site, site) for site in ("H1", "P1")]
    for home in homes:
        other = next(h for h in homes if h is not home)
        exported = tmp_path / f"{other.site_id}.identity.json"
        exported.write_text(json.dumps(other.public_identity().to_json()), encoding="utf-8")
        trusted = runner.invoke(
            app, ["federation", "trust", str(exported), "--home", str(home.root)]
        )
        assert trusted.exit_code == 0 and "now trusted" in trusted.output, trusted.output
    state = tmp_path / "coordinator"
    (state / "registry").mkdir(parents=True)  # the bureau registered H1 and P1, nobody else
    for home in homes:
        text = json.dumps(home.public_identity().to_json())
        (state / "registry" / f"{home.site_id}.json").write_text(text, encoding="utf-8")
    stranger = init_home(tmp_path / "X9", "X9")  # a SuperNode the bureau never registered
    configs = []
    for i, home in enumerate([*homes, stranger]):
        _table(tmp_path / f"{home.site_id}.csv", seed=i, rows=900)
        configs.append({"home": str(home.root), "table": str(tmp_path / f"{home.site_id}.csv")})
    with LocalFederation(configs, workdir=tmp_path / "flower") as federation:
        env = {"FLWR_HOME": str(federation.flwr_home)}
        common = ["--superlink", federation.name, "--state-dir", str(state), "--nodes", "3"]
        train = ["federation", "train", *common, "--federation", "demo", "--rounds", "1"]
        train += ["--trees", "3", "--key-creator", "H1"]
        first = runner.invoke(app, [*train, "--run", "a"], env=env)
        assert first.exit_code == 0, first.output
        assert "unsigned bundle" in first.output
        assert re.search(r"\(X9, [0-9a-f]{32}\) is not registered: refused", first.output)
        assert "X9: unsigned bundle" not in first.output
        assert not (stranger.secrets / "federation").exists()  # it got no epoch
        rotate = ["federation", "rotate", *common, "--federation", "demo", "--key-creator", "P1"]
        rotated = runner.invoke(app, rotate, env=env)
        assert rotated.exit_code == 0 and "epoch 2 is in use" in rotated.output, rotated.output
        second = runner.invoke(app, [*train, "--run", "b"], env=env)
        assert second.exit_code == 0, second.output
        match = ["federation", "match", *common, "--federation", "demo", "--job", "all"]
        matched = runner.invoke(app, [*match, "--window", "2026-03"], env=env)
        assert matched.exit_code == 0, matched.output
        assert "settlements flagged per site" in matched.output
        bad = runner.invoke(app, [*match[:-1], "no_such_job"], env=env)
        assert bad.exit_code == 2 and "unknown job" in bad.output
    report = json.loads((state / "report-match.json").read_text())
    assert [r["job"] for r in report["matching"]] == list(JOBS)
    assert all(set(r["tokens"]) == {"H1", "P1"} for r in report["matching"])  # stores are empty
    assert json.loads((state / "report-b.json").read_text())["epoch"] == 2
    status = runner.invoke(
        app, ["federation", "status", "--home", str(homes[0].root), "--federation", "demo"]
    )
    assert status.exit_code == 0 and "epoch 2" in status.output, status.output
    assert homes[1].public_identity().fingerprint in status.output
