"""A node's part in federated bagging: rebuild the global model, evaluate it, boost new trees.

Each training message from the coordinator carries every contribution accepted so far (sealed
trees, one per member and round). The node:

1. opens each (signed by a member, sealed under the epoch's key for that run and round;
   anything else is refused) and appends them round by round, senders in fingerprint order,
   with :func:`fedrisk.models.bagging.merge` — so every node assembles byte-identical models,
   and a node that missed a round catches up from the same message;
2. scores its own labelled rows with that global model and reports only
   :func:`score histograms <fedrisk.models.metrics.score_histograms>` per label, signed;
3. boosts ``trees`` new trees from the global model on its rows and returns them sealed for the
   other members (:mod:`fedrisk.crypto.fedseal`).

What leaves the node: the sealed trees (opaque to the coordinator), the histograms and the row
count. What the node learns: the other members' trees — the global model they all train.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from fedrisk.crypto.fedseal import open_from_federation, seal_for_federation
from fedrisk.crypto.identity import Identity
from fedrisk.crypto.signed import ReplayGuard, SignedMessageError, sender_of, sign_message
from fedrisk.models import bagging
from fedrisk.models.bundle import write_federated_bundle
from fedrisk.models.features import FeatureSpec
from fedrisk.models.metrics import score_histograms
from fedrisk.models.tables import read_feature_table
from fedrisk.models.training import split
from fedrisk.node.access import SiteAccess
from fedrisk.node.membership import Membership, MembershipError
from fedrisk.node.training import labelled_features

TREES = "trees"
EVALUATION = "evaluation"
HOLDOUT_SEED = 7


@dataclass(frozen=True)
class LocalData:
    """The rows a node trains and evaluates on."""

    features: NDArray[np.float64]
    labels: NDArray[np.int64]
    spec: FeatureSpec

    def rows(self, index: NDArray[np.int64]) -> LocalData:
        return LocalData(self.features[index], self.labels[index], self.spec)

    def holdout(self, seed: int = HOLDOUT_SEED) -> tuple[LocalData, LocalData]:
        """Rows to train on and held-out rows to evaluate on (stratified by label; the same
        split as local training, validation rows joining the training rows)."""
        fit, valid, held = split(self.labels, seed)
        return self.rows(np.sort(np.concatenate([fit, valid]))), self.rows(held)


@dataclass(frozen=True)
class Contribution:
    """One member's sealed trees of one round, as the coordinator relays them."""

    round: int
    message: bytes


@dataclass(frozen=True)
class RoundReply:
    """What the node returns for a round: sealed trees (none in the final step) and its signed
    evaluation of the global model it rebuilt (none before the first trees exist)."""

    trees: bytes | None
    evaluation: bytes | None
    rows: int


def claims_data(access: SiteAccess) -> LocalData:
    """The node's labelled settlements, as screening's features (purpose ``training``)."""
    from fedrisk.models.features import SPEC

    labelled = labelled_features(access)
    return LocalData(labelled.features, labelled.labels, SPEC)


def table_data(path: Path, label: str) -> LocalData:
    """A model owner's numeric table at this node (every column but ``label`` is a feature)."""
    features, labels, spec = read_feature_table(path, label)
    return LocalData(features, labels, spec)


def run_context(membership: Membership, run: str, round_: int) -> str:
    return membership.context(f"run={run}", f"round={round_}")


def global_model(
    membership: Membership, run: str, contributions: Sequence[Contribution]
) -> str | None:
    """The global model after every relayed round (None before the first)."""
    rounds: dict[int, list[bytes]] = {}
    for contribution in contributions:
        rounds.setdefault(contribution.round, []).append(contribution.message)
    model = None
    for round_ in sorted(rounds):
        model = bagging.merge(model, _opened(membership, run, round_, rounds[round_]))
    return model


@dataclass(frozen=True)
class RoundTask:
    """What the coordinator asks of a node in one round (``final``: rebuild and evaluate)."""

    run: str
    round: int
    contributions: Sequence[Contribution]
    trees: int
    final: bool = False


def train_round(
    membership: Membership, identity: Identity, data: LocalData, task: RoundTask
) -> RoundReply:
    """The node's step of one round: trains on the training rows of ``data``, evaluates on
    its held-out rows."""
    model = global_model(membership, task.run, task.contributions)
    context = run_context(membership, task.run, task.round)
    fit, held = data.holdout()
    evaluation = None
    if model is not None:
        evaluation = sign_message(identity, EVALUATION, context, evaluate(model, held))
    if task.final:
        return RoundReply(None, evaluation, len(fit.labels))
    params = bagging.member_params(len(membership.members))
    new = bagging.train_trees(
        model, fit.features, fit.labels, task.trees, params, fit.spec.names, seed=task.round
    )
    sealed = seal_for_federation(membership.secret, identity, TREES, context, new.encode())
    return RoundReply(sealed, evaluation, len(fit.labels))


def audited_round(
    access: SiteAccess, membership: Membership, identity: Identity, data: LocalData, task: RoundTask
) -> RoundReply:
    """:func:`train_round` under the node's access policy: what leaves the node is a logged write
    to ``federation``; a refused contribution (unsigned, tampered, replayed, from a stranger)
    is logged as a denial, with why, before the error goes back to the coordinator."""
    access.require_writes(["federation"])
    try:
        reply = train_round(membership, identity, data, task)
    except SignedMessageError as error:
        access.refuse("read", "federation", f"run {task.run} round {task.round}: {error}")
        raise
    access.write("federation", reply.rows, lambda: None)
    return reply


def evaluate(model: str, data: LocalData) -> bytes:
    """The score histograms per label of ``model`` on the node's rows (JSON), nothing per row."""
    scores = lgb.Booster(model_str=model).predict(data.features)
    positives, negatives = score_histograms(data.labels, np.asarray(scores, np.float64))
    return json.dumps({"positives": positives.tolist(), "negatives": negatives.tolist()}).encode()


def _opened(membership: Membership, run: str, round_: int, messages: list[bytes]) -> list[str]:
    """The round's trees, verified and decrypted, one per member, in fingerprint order."""
    guard, context = ReplayGuard(), run_context(membership, run, round_)
    by_sender: dict[str, str] = {}
    for message in messages:
        try:
            sender = membership.member(sender_of(message))
        except MembershipError as error:  # a node the key creator did not seal the epoch to
            raise SignedMessageError(f"round {round_}: {error}") from None
        if sender.fingerprint in by_sender:
            raise SignedMessageError(f"two contributions of {sender.site_id} in round {round_}")
        opened = open_from_federation(membership.secret, message, sender, TREES, context, guard)
        by_sender[sender.fingerprint] = opened.payload.decode("utf-8")
    return [by_sender[fingerprint] for fingerprint in sorted(by_sender)]


@dataclass(frozen=True)
class Published:
    """What the coordinator announces once the rounds are done: the federation's metrics from
    the summed held-out histograms, and what the model's metadata records."""

    positives: NDArray[np.int64]
    negatives: NDArray[np.int64]
    metrics: dict[str, float]
    metadata: dict[str, object]


def publish(
    membership: Membership,
    run: str,
    contributions: Sequence[Contribution],
    published: Published,
    out: Path,
) -> Path:
    """Write the final global model as an unsigned bundle into ``out`` for the model owner to
    sign (``fedrisk model sign``). Every member writes the same model, metrics and metadata."""
    model = global_model(membership, run, contributions)
    if model is None:
        raise SignedMessageError(f"run {run} has no contributions to publish")
    if (out / "model.txt").is_file() and (out / "model.txt").read_text(encoding="utf-8") == model:
        return out  # published already (the run was resumed after its last step)
    metadata = {
        **published.metadata,
        "source": f"federation {membership.federation} epoch {membership.epoch} run {run}",
        "members": sorted(member.site_id for member in membership.members),
        "lightgbm": version("lightgbm"),
    }
    histograms = (published.positives, published.negatives)
    spec = FeatureSpec(tuple(bagging.feature_names(model)))
    return write_federated_bundle(out, model, spec, published.metrics, metadata, histograms)
