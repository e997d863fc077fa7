"""Faults in a real federation: a node killed in the middle of a run, a ServerApp stopped and
started again (resume from the last completed round)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from fedrisk.deploy.local import LocalFederation, RunResult
from tests.test_federation_e2e import APP, _homes, _table

pytestmark = pytest.mark.federation


def _configs(tmp_path: Path) -> list[dict[str, str | int | float]]:
    homes = _homes(tmp_path / "nodes")
    configs: list[dict[str, str | int | float]] = []
    for i, home in enumerate(homes):
        table = tmp_path / f"table-{home.site_id}.csv"
        _table(table, seed=i, rows=900)
        configs.append({"home": str(home.root), "table": str(table), "label": "label"})
    return configs


def _run_config(state: Path, rounds: int, min_nodes: int) -> dict[str, str | int | float]:
    return {
        "federation": "demo",
        "run": "faults",
        "rounds": rounds,
        "trees": 3,
        "nodes": 3,
        "min-nodes": min_nodes,
        "key-creator": "H1",
        "state-dir": str(state),
        "round-timeout": 25,
    }


def _in_background(
    federation: LocalFederation, config: dict[str, str | int | float]
) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(federation.run(APP, config, 400)))
    thread.start()
    return thread, results


def _wait_for(log: Path, pattern: str, timeout: float = 200) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.is_file() else ""
        if re.search(pattern, text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} never appeared in {log}")


def test_a_node_killed_mid_run_is_dropped_and_the_rounds_complete(tmp_path: Path) -> None:
    state = tmp_path / "coordinator"
    with LocalFederation(_configs(tmp_path), workdir=tmp_path / "flower") as federation:
        thread, results = _in_background(federation, _run_config(state, rounds=3, min_nodes=2))
        _wait_for(federation.logs / "run-1.stdout", r"round 1/3: 3/3")
        federation.kill_node(2)  # P1, between rounds 1 and 2
        thread.join(500)
        assert results and results[0].ok, results and results[0].stdout[-3000:]
    report = json.loads((state / "report-faults.json").read_text())
    rounds = {r["round"]: r for r in report["rounds"]}
    assert sorted(rounds[1]["accepted"]) == ["H1", "H2", "P1"]
    for later in (2, 3, 4):  # the two later rounds and the final evaluation
        assert sorted(rounds[later]["accepted"]) == ["H1", "H2"]
        assert rounds[later]["dropped"] == ["P1: no answer"]
    assert rounds[4]["evaluation"]["auc"] > 0.7
    assert "dropped: P1: no answer" in (tmp_path / "flower" / "logs" / "run-1.stdout").read_text()


def test_a_restarted_serverapp_resumes_after_the_last_completed_round(tmp_path: Path) -> None:
    state = tmp_path / "coordinator"
    config = _run_config(state, rounds=3, min_nodes=3)
    with LocalFederation(_configs(tmp_path), workdir=tmp_path / "flower") as federation:
        thread, results = _in_background(federation, config)
        text = _wait_for(federation.logs / "run-1.stdout", r"round 2/3: 3/3")
        started = re.search(r"Successfully started run (\d+)", text)
        assert started is not None
        run_id = int(started.group(1))
        federation.stop_run(run_id)  # the ServerApp dies after round 2
        thread.join(200)
        assert results and not results[0].ok
        resumed = federation.run(APP, config, timeout=400)
        assert resumed.ok, resumed.stdout[-3000:]
    second = (tmp_path / "flower" / "logs" / "run-2.stdout").read_text()
    assert "round 1/3" not in second and "round 2/3" not in second  # not run again
    assert "round 3/3: 3/3" in second and "final: 3/3" in second
    report = json.loads((state / "report-faults.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3, 4]
    ledger = state / "ledger-faults-epoch-1.jsonl"
    rounds = [json.loads(line)["round"] for line in ledger.read_text().splitlines()]
    assert sorted(rounds) == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # each round's trees kept once
