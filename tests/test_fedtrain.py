"""Federated bagging, node and coordinator steps wired directly (the Flower path is tested in
test_federation_e2e.py): what crosses, what the coordinator can read, what it refuses."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from fedrisk.coordinator.training import Ledger, Reply, check_reply, federated_evaluation
from fedrisk.crypto.signed import ReplayGuard, SignedMessageError, sign_message, step_context
from fedrisk.models.features import FeatureSpec
from fedrisk.models.metrics import roc_auc
from fedrisk.node.fedtrain import (
    Contribution,
    LocalData,
    RoundTask,
    global_model,
    train_round,
)
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.membership import Membership, accept_epoch, make_epoch

ROUNDS, TREES = 3, 8


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[NodeHome, Membership]]:
    root = tmp_path_factory.mktemp("fedtrain")
    homes = [init_home(root / site, site) for site in ("H1", "H2", "P1")]
    for home in homes:
        for other in homes:
            if other is not home:
                home.trust("federation_member", other.public_identity())
    new = make_epoch(homes[0], homes[0].identity(), "demo", 1, [h.public_identity() for h in homes])
    joined = []
    for home in homes:
        envelope = new.envelopes[home.public_identity().fingerprint]
        joined.append(
            (home, accept_epoch(home, home.identity(), new.membership.creator, "demo", 1, envelope))
        )
    return joined


def _data(seed: int, rows: int = 3000) -> LocalData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    logit = 1.5 * x[:, 0] - x[:, 1] * x[:, 2] + 0.8 * np.sin(3 * x[:, 3]) - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return LocalData(x, y, FeatureSpec(tuple(f"f{i}" for i in range(6))))


def _run(
    federation: list[tuple[NodeHome, Membership]], data: list[LocalData]
) -> tuple[Ledger, list[list[Reply]], list[bytes]]:
    """The coordinator's loop, replies checked as the ServerApp checks them."""
    identities = [home.public_identity() for home, _ in federation]
    members = {identity.fingerprint: identity for identity in identities}
    ledger, evaluations, wire = Ledger(), [], []
    for round_ in range(1, ROUNDS + 2):
        contributions = [Contribution(r, m) for r, m in ledger.contributions()]
        context = step_context("demo", 1, "run=r1", f"round={round_}")
        guard, replies = ReplayGuard(), []
        for (home, membership), rows in zip(federation, data, strict=True):
            final = round_ == ROUNDS + 1
            identity = home.identity()
            task = RoundTask("r1", round_, contributions, TREES, final)
            reply = train_round(membership, identity, rows, task)
            wire += [b for b in (reply.trees, reply.evaluation) if b is not None]
            replies.append(check_reply(members, context, reply.trees, reply.evaluation, guard))
        for reply in replies:
            if reply.trees is not None:
                ledger.record(round_, reply.sender, reply.trees)
        evaluations.append(replies)
    return ledger, evaluations, wire


def test_bagging_rounds_agree_everywhere_and_match_central_training(
    federation: list[tuple[NodeHome, Membership]],
) -> None:
    data = [_data(seed) for seed in (1, 2, 3)]
    ledger, evaluations, wire = _run(federation, data)
    contributions = [Contribution(r, m) for r, m in ledger.contributions()]
    models = {global_model(m, "r1", contributions) for _, m in federation}
    assert len(models) == 1  # every node assembled the same model, byte for byte
    model = lgb.Booster(model_str=models.pop())
    assert model.num_trees() == ROUNDS * TREES * len(federation)
    final = federated_evaluation(evaluations[-1])
    first = federated_evaluation(evaluations[1])  # the model after round 1
    assert final is not None and first is not None
    held = [d.holdout()[1] for d in data]
    union_x = np.vstack([h.features for h in held])
    union_y = np.concatenate([h.labels for h in held])
    exact = roc_auc(union_y, model.predict(union_x))
    assert abs(final.auc - exact) < 2e-3  # the histograms give the union's AUC
    assert final.positives == union_y.sum()
    fit = [d.holdout()[0] for d in data]
    central = lgb.train(
        {"objective": "binary", "verbose": -1, "seed": 1},
        lgb.Dataset(np.vstack([f.features for f in fit]), np.concatenate([f.labels for f in fit])),
        num_boost_round=ROUNDS * TREES,
    )
    central_auc = roc_auc(union_y, central.predict(union_x))
    print(f"federated AUC {final.auc:.4f}, central {central_auc:.4f}")
    assert final.auc > central_auc - 0.02, (final.auc, central_auc)
    for blob in wire:  # what the coordinator received: no tree, no threshold, no split
        for marker in (
            b"Tree=",
            b"threshold=",
            b"leaf_value=",
            b"split_feature=",
            b"feature_names=",
        ):
            assert marker not in blob


def test_the_coordinator_refuses_replays_strangers_and_unsigned_replies(
    federation: list[tuple[NodeHome, Membership]], tmp_path: Path
) -> None:
    (home, membership), data = federation[0], _data(1)
    members = {home.public_identity().fingerprint: home.public_identity()}
    reply = train_round(membership, home.identity(), data, RoundTask("r2", 1, [], TREES))
    round_1 = step_context("demo", 1, "run=r2", "round=1")
    guard = ReplayGuard()
    check_reply(members, round_1, reply.trees, None, guard)
    with pytest.raises(SignedMessageError, match="already received"):
        check_reply(members, round_1, reply.trees, None, guard)
    with pytest.raises(SignedMessageError, match="replayed"):  # round 1's trees offered in 2
        round_2 = step_context("demo", 1, "run=r2", "round=2")
        check_reply(members, round_2, reply.trees, None, ReplayGuard())
    with pytest.raises(SignedMessageError, match="unsigned"):
        check_reply(members, round_1, b"Tree=0\nthreshold=1", None, ReplayGuard())
    stranger = init_home(tmp_path / "x", "X9")
    forged = sign_message(stranger.identity(), "trees", round_1, b"opaque")
    with pytest.raises(SignedMessageError, match="not an enrolled member"):
        check_reply(members, round_1, forged, None, ReplayGuard())


def test_a_node_refuses_a_tampered_or_doubled_contribution(
    federation: list[tuple[NodeHome, Membership]],
) -> None:
    (home, membership), data = federation[0], _data(1)
    reply = train_round(membership, home.identity(), data, RoundTask("r3", 1, [], TREES))
    assert reply.trees is not None
    tampered = bytearray(reply.trees)
    tampered[-100] ^= 1
    with pytest.raises(SignedMessageError):
        global_model(membership, "r3", [Contribution(1, bytes(tampered))])
    with pytest.raises(SignedMessageError, match=r"already received|two contributions"):
        global_model(membership, "r3", [Contribution(1, reply.trees)] * 2)


def test_a_refused_contribution_is_in_the_nodes_audit_log(
    federation: list[tuple[NodeHome, Membership]],
) -> None:
    from fedrisk.node.access import Principal, SiteAccess
    from fedrisk.node.auditlog import read_entries
    from fedrisk.node.fedtrain import audited_round

    (home, membership), data = federation[1], _data(2)
    access = SiteAccess.open(home, Principal("pytest", "operator"), "training")
    unsigned = Contribution(1, b"Tree=0\nthreshold=1")
    with pytest.raises(SignedMessageError):
        task = RoundTask("r4", 2, [unsigned], TREES)
        audited_round(access, membership, home.identity(), data, task)
    last = list(read_entries(home.audit))[-1]
    assert (last["decision"], last["dataset"], last["purpose"]) == (
        "denied",
        "federation",
        "training",
    )
    assert "run r4 round 2" in last["reason"] and "unsigned" in last["reason"]
    task = RoundTask("r4", 1, [], TREES)
    reply = audited_round(access, membership, home.identity(), data, task)
    last = list(read_entries(home.audit))[-1]
    assert (last["decision"], last["action"], last["rows"]) == ("allowed", "write", reply.rows)


def test_trees_from_a_node_outside_the_epoch_are_refused(
    federation: list[tuple[NodeHome, Membership]], tmp_path: Path
) -> None:
    from fedrisk.crypto.fedseal import seal_for_federation
    from fedrisk.node.fedtrain import run_context

    membership, outsider = federation[0][1], init_home(tmp_path / "x", "X9")
    context = run_context(membership, "r5", 1)
    # Even holding the secret (a leak, say), a node the epoch does not list is refused.
    sealed = seal_for_federation(membership.secret, outsider.identity(), "trees", context, b"t")
    with pytest.raises(SignedMessageError, match="not a member"):
        global_model(membership, "r5", [Contribution(1, sealed)])


def test_publishing_again_after_a_resume_keeps_the_bundle(
    federation: list[tuple[NodeHome, Membership]], tmp_path: Path
) -> None:
    from fedrisk.node.fedtrain import Published, publish

    home, membership = federation[0]
    reply = train_round(membership, home.identity(), _data(1), RoundTask("r6", 1, [], TREES))
    assert reply.trees is not None
    contributions = [Contribution(1, reply.trees)]
    histogram = np.zeros(1000, np.int64)
    histogram[[10, 900]] = 5
    published = Published(histogram, histogram[::-1].copy(), {"auc": 0.9, "threshold": 0.5}, {})
    first = publish(membership, "r6", contributions, published, tmp_path / "bundle")
    model = (first / "model.txt").read_bytes()
    again = publish(membership, "r6", contributions, published, tmp_path / "bundle")
    assert again == first and (again / "model.txt").read_bytes() == model
