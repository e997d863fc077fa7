"""PreCheck with an active model: every verdict carries the score, flagged ones their reasons."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedrisk.crypto.identity import Identity
from fedrisk.models.bundle import sign_bundle
from fedrisk.node import registry
from fedrisk.node.access import Principal
from fedrisk.node.home import NodeHome
from fedrisk.node.precheckclient import check, claim_from_json
from fedrisk.node.serve import Running, WorkerStart, start
from fedrisk.node.training import train_node
from fedrisk.protos.fedrisk.v1 import precheck_pb2
from fedrisk.synth import generate_dataset
from tests.nodes import operator
from tests.screening import ingest_sites


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeHome, Path, str]:
    root = tmp_path_factory.mktemp("precheck-model")
    generate_dataset(root / "data", sites=1, settlements=12_000, seed=9)
    (home,) = ingest_sites(root / "data", root / "nodes").values()
    owner = Identity.generate("owner")
    train_node(operator(home, "training"), root / "bundle")
    sign_bundle(root / "bundle", owner)
    home.trust_owner(owner.public)
    pushed = registry.push(operator(home, "models"), root / "bundle")
    registry.activate(operator(home, "models"), pushed.bundle_id)
    return home, root / "data" / home.site_id, pushed.bundle_id


@pytest.fixture(scope="module")
def server(node: tuple[NodeHome, Path, str]) -> Iterator[Running]:
    running = start(WorkerStart(node[0].root, Principal("pytest", "precheck")), "127.0.0.1:0")
    yield running
    running.stop(grace=1)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_model_only_fraud_is_flagged_with_reasons_and_clean_claims_mostly_not(
    node: tuple[NodeHome, Path, str], server: Running
) -> None:
    _, site, bundle_id = node
    settlements = {r["settlement_id"]: r for r in _csv(site / "settlements.csv")}
    lines: dict[str, list[dict[str, str]]] = {}
    for row in _csv(site / "lines.csv"):
        lines.setdefault(row["settlement_id"], []).append(row)
    labels = _csv(site / "labels.csv")
    fraud = [r["settlement_id"] for r in labels if r["violation_type"] == "other"][:60]
    clean = [r["settlement_id"] for r in labels if r["label"] == "0"][:300]
    target = f"127.0.0.1:{server.port}"

    def verdict(settlement_id: str) -> precheck_pb2.Verdict:
        claim = {"settlement": settlements[settlement_id], "lines": lines.get(settlement_id, [])}
        return check(target, claim_from_json(claim))

    fraud_verdicts = [verdict(s) for s in fraud if s in settlements]
    clean_verdicts = [verdict(s) for s in clean if s in settlements]
    assert len(fraud_verdicts) >= 40 and len(clean_verdicts) >= 250
    for v in fraud_verdicts + clean_verdicts:
        assert v.HasField("model") and v.model_version == bundle_id == v.model.model
        assert 0.0 <= v.model.score <= 1.0
        assert v.model.flagged == (v.model.score >= v.model.threshold)
        assert len(v.model.reasons) <= 3 and (v.model.reasons or not v.model.flagged)
        if v.model.flagged:
            assert v.decision in (precheck_pb2.WARN, precheck_pb2.BLOCK)
    caught = sum(v.model.flagged for v in fraud_verdicts) / len(fraud_verdicts)
    false_alarms = sum(v.model.flagged for v in clean_verdicts) / len(clean_verdicts)
    assert caught >= 0.8, caught
    assert false_alarms <= 0.05, false_alarms


def test_a_reload_takes_up_a_model_rolled_back_or_activated_since(
    node: tuple[NodeHome, Path, str],
) -> None:
    home, site, bundle_id = node
    row = next(iter(_csv(site / "settlements.csv")))
    lines = [r for r in _csv(site / "lines.csv") if r["settlement_id"] == row["settlement_id"]]
    claim = claim_from_json({"settlement": row, "lines": lines})
    running = start(WorkerStart(home.root, Principal("pytest", "precheck")), "127.0.0.1:0")
    target = f"127.0.0.1:{running.port}"
    try:
        scored = check(target, claim)
        assert scored.model_version == bundle_id and scored.HasField("model")
        registry.rollback(operator(home, "models"))
        assert check(target, claim).model_version == bundle_id  # loaded at start …
        running.reload()
        unscored = check(target, claim)  # … until a reload: no model any more
        assert unscored.model_version == "" and not unscored.HasField("model")
        registry.activate(operator(home, "models"), bundle_id)
        running.reload()
        again = check(target, claim)
        assert again.model_version == bundle_id
        assert again.model.score == scored.model.score
    finally:
        running.stop(grace=1)
        if registry.active(operator(home, "models")) is None:
            registry.activate(operator(home, "models"), bundle_id)
