"""The coordinator's part in federated bagging: check, keep and relay sealed trees; sum the
nodes' evaluation histograms into the federation's ROC AUC and average precision.

Per round the coordinator verifies each reply against the enrolled members' public keys:
sealed trees and evaluation are both signed messages bound to the federation, epoch, run and
round, so an unsigned, tampered, foreign or replayed reply is refused (and reported) before it
is kept or relayed. Accepted trees go into the :class:`Ledger`, which the next round's message
carries to every node and which is written to disk, so a restarted ServerApp resumes after the
last completed round.

What the coordinator learns: which members took part in each round, the size of each sealed
contribution, each node's training-row count and per-label score histograms of its held-out
rows (so the global curves). What it never learns: a tree, a threshold, a row or a score.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fedrisk.coordinator.exchange import Exchange
from fedrisk.crypto.identity import PublicIdentity
from fedrisk.crypto.signed import (
    ReplayGuard,
    SignedMessageError,
    sender_of,
    step_context,
    verify_message,
)
from fedrisk.models.metrics import (
    HISTOGRAM_BINS,
    histogram_ap,
    histogram_auc,
    histogram_best_f1_threshold,
)
from fedrisk.protos.records import (
    RecordError,
    Value,
    content,
    get_optional_bytes,
    get_str,
    record,
)

TREES = "trees"
EVALUATION = "evaluation"
log = logging.getLogger("fedrisk.coordinator")


@dataclass
class Ledger:
    """Accepted contributions by round and sender fingerprint; appended to ``path``."""

    path: Path | None = None
    rounds: dict[int, dict[str, bytes]] = field(default_factory=dict)

    def record(self, round_: int, sender: str, message: bytes) -> None:
        self.rounds.setdefault(round_, {})[sender] = message
        if self.path is not None:
            text = base64.b64encode(message).decode("ascii")
            line = json.dumps({"round": round_, "sender": sender, "message": text})
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def contributions(self) -> list[tuple[int, bytes]]:
        """Every accepted contribution, by round then sender: what the next message carries."""
        return [
            (round_, self.rounds[round_][sender])
            for round_ in sorted(self.rounds)
            for sender in sorted(self.rounds[round_])
        ]

    def completed(self) -> int:
        """The last round with accepted trees (0 before the first)."""
        return max(self.rounds, default=0)

    @staticmethod
    def load(path: Path) -> Ledger:
        """The ledger a previous ServerApp wrote (an empty one if there is none yet)."""
        ledger = Ledger(path)
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                message = base64.b64decode(entry["message"])
                ledger.rounds.setdefault(int(entry["round"]), {})[entry["sender"]] = message
        return ledger


@dataclass(frozen=True)
class Reply:
    """One node's checked reply: who sent it, its trees, its histograms."""

    sender: str
    trees: bytes | None
    positives: NDArray[np.int64]
    negatives: NDArray[np.int64]


def check_reply(
    members: Mapping[str, PublicIdentity],
    context: str,
    trees: bytes | None,
    evaluation: bytes | None,
    guard: ReplayGuard,
) -> Reply:
    """Verify a node's reply of one round; raises :class:`SignedMessageError` to refuse it."""
    messages = [m for m in (trees, evaluation) if m is not None]
    if not messages:
        raise SignedMessageError("an empty reply: neither trees nor an evaluation")
    senders = {sender_of(m) for m in messages}
    if len(senders) != 1:
        raise SignedMessageError("the trees and the evaluation name different senders")
    sender = senders.pop()
    if sender not in members:
        raise SignedMessageError(f"{sender} is not an enrolled member")
    identity = members[sender]
    if trees is not None:
        verify_message(trees, identity, TREES, context, guard)
    positives = negatives = np.zeros(HISTOGRAM_BINS, np.int64)
    if evaluation is not None:
        payload = verify_message(evaluation, identity, EVALUATION, context, guard).payload
        positives, negatives = _histograms(payload)
    return Reply(sender, trees, positives, negatives)


@dataclass(frozen=True)
class Evaluation:
    """The federation's metrics of one global model, from the summed histograms."""

    auc: float
    pr_auc: float
    positives: int
    negatives: int


def federated_evaluation(replies: list[Reply]) -> Evaluation | None:
    """AUC and PR-AUC of the union of the nodes' held-out rows (None without both labels)."""
    positives = sum((r.positives for r in replies), np.zeros(HISTOGRAM_BINS, np.int64))
    negatives = sum((r.negatives for r in replies), np.zeros(HISTOGRAM_BINS, np.int64))
    if positives.sum() == 0 or negatives.sum() == 0:
        return None
    return Evaluation(
        histogram_auc(positives, negatives),
        histogram_ap(positives, negatives),
        int(positives.sum()),
        int(negatives.sum()),
    )


def _histograms(payload: bytes) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    try:
        data = json.loads(payload)
        positives = np.asarray(data["positives"], np.int64)
        negatives = np.asarray(data["negatives"], np.int64)
    except (ValueError, KeyError, TypeError) as error:
        raise SignedMessageError(f"a malformed evaluation ({error})") from None
    if positives.shape != (HISTOGRAM_BINS,) or negatives.shape != (HISTOGRAM_BINS,):
        raise SignedMessageError(f"an evaluation must hold two histograms of {HISTOGRAM_BINS}")
    if (positives < 0).any() or (negatives < 0).any():
        raise SignedMessageError("an evaluation holds negative counts")
    return positives, negatives


@dataclass(frozen=True)
class Settings:
    """One training run as the operator launched it (``[tool.flwr.app.config]`` / --run-config)."""

    federation: str
    run: str
    rounds: int
    trees: int
    min_nodes: int


@dataclass
class RoundReport:
    """What the operator sees of one round (round ``rounds + 1`` is the final evaluation)."""

    round: int
    asked: int
    accepted: list[str] = field(default_factory=list)  # site ids
    dropped: list[str] = field(default_factory=list)  # "site: why"
    evaluation: Evaluation | None = None  # of the global model before this round's trees
    seconds: float = 0.0
    bytes_in: dict[str, int] = field(default_factory=dict)  # per site, what it sent
    bytes_out: int = 0  # what each node was sent


def run_rounds(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    epoch: int,
    settings: Settings,
    ledger: Ledger,
    on_round: Callable[[RoundReport], None] = lambda report: None,
) -> tuple[list[RoundReport], list[Reply]]:
    """Rounds after the ledger's last completed one, then the final evaluation (whose checked
    replies are returned too: their histograms are the final model's); ``on_round`` sees each
    round's report as soon as the round is over."""
    reports: list[RoundReport] = []
    last: list[Reply] = []
    for round_ in range(ledger.completed() + 1, settings.rounds + 2):
        report, last = one_round(exchange, nodes, epoch, settings, ledger, round_)
        reports.append(report)
        _log(report, settings.rounds)
        on_round(report)
        if len(report.accepted) < settings.min_nodes:
            raise TrainingError(
                f"round {round_}: {len(report.accepted)} nodes answered, fewer than the minimum"
                f" of {settings.min_nodes} (dropped: {'; '.join(report.dropped) or 'none'})"
            )
    return reports, last


def one_round(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    epoch: int,
    settings: Settings,
    ledger: Ledger,
    round_: int,
) -> tuple[RoundReport, list[Reply]]:
    """Send every member the ledger and the round's task; keep what verifies."""
    started = time.perf_counter()
    final = round_ == settings.rounds + 1
    rounds, messages = zip(*ledger.contributions(), strict=True) if ledger.rounds else ((), ())
    fields: dict[str, Value] = {
        "federation": settings.federation,
        "epoch": epoch,
        "run": settings.run,
        "round": round_,
        "trees": settings.trees,
        "final": int(final),
        "contribution_rounds": list(rounds),
        "contributions": list(messages),
    }
    task = content(fields)
    replies = exchange({node: ("train", task) for node in nodes})
    report = RoundReport(round_, len(nodes), bytes_out=sum(len(m) for m in messages))
    context = step_context(settings.federation, epoch, f"run={settings.run}", f"round={round_}")
    members = {identity.fingerprint: identity for identity in nodes.values()}
    guard, checked = ReplayGuard(), []
    for node, identity in sorted(nodes.items()):
        if node not in replies:
            report.dropped.append(f"{identity.site_id}: no answer")
            continue
        try:
            config = record(replies[node])
            trees = get_optional_bytes(config, "trees")
            evaluation = get_optional_bytes(config, "evaluation")
            reply = check_reply(members, context, trees, evaluation, guard)
        except (SignedMessageError, RecordError) as error:
            report.dropped.append(f"{identity.site_id}: refused ({error})")
            continue
        if reply.sender != identity.fingerprint:
            report.dropped.append(f"{identity.site_id}: answered with another member's reply")
            continue
        if not final and trees is None:
            report.dropped.append(f"{identity.site_id}: no trees")
            continue
        checked.append(reply)
        report.accepted.append(identity.site_id)
        report.bytes_in[identity.site_id] = len(trees or b"") + len(evaluation or b"")
    for reply in checked:
        if reply.trees is not None and not final:
            ledger.record(round_, reply.sender, reply.trees)
    report.evaluation = federated_evaluation(checked)
    report.seconds = time.perf_counter() - started
    return report, checked


def publish(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    epoch: int,
    settings: Settings,
    ledger: Ledger,
    final: list[Reply],
) -> dict[str, str]:
    """Ask every member to write the final model as an unsigned bundle, with the federation's
    metrics (from the summed histograms of the final evaluation); returns site → bundle path."""
    positives = sum((r.positives for r in final), np.zeros(HISTOGRAM_BINS, np.int64))
    negatives = sum((r.negatives for r in final), np.zeros(HISTOGRAM_BINS, np.int64))
    metrics = {
        "auc": histogram_auc(positives, negatives),
        "pr_auc": histogram_ap(positives, negatives),
        "threshold": histogram_best_f1_threshold(positives, negatives),
        "rows_held_out": float(positives.sum() + negatives.sum()),
        "positives_held_out": float(positives.sum()),
    }
    metadata = {"rounds": settings.rounds, "trees_per_round": settings.trees}
    rounds, messages = zip(*ledger.contributions(), strict=True)
    fields: dict[str, Value] = {
        "federation": settings.federation,
        "epoch": epoch,
        "run": settings.run,
        "contribution_rounds": list(rounds),
        "contributions": list(messages),
        "positives": positives.tolist(),
        "negatives": negatives.tolist(),
        "metrics": json.dumps(metrics),
        "metadata": json.dumps(metadata),
    }
    replies = exchange({node: ("query.publish", content(fields)) for node in nodes})
    written = {nodes[n].site_id: get_str(record(reply), "bundle") for n, reply in replies.items()}
    log.info(
        "published: AUC %.4f, PR-AUC %.4f, threshold %.3f; bundles at %d/%d nodes",
        metrics["auc"],
        metrics["pr_auc"],
        metrics["threshold"],
        len(written),
        len(nodes),
    )
    return written


class TrainingError(RuntimeError):
    """A round that cannot complete (too few nodes); the text says who dropped and why."""


def _log(report: RoundReport, rounds: int) -> None:
    name = "final" if report.round == rounds + 1 else f"round {report.round}/{rounds}"
    metrics = (
        f"AUC {report.evaluation.auc:.4f}, PR-AUC {report.evaluation.pr_auc:.4f}"
        if report.evaluation
        else "no global model yet"
    )
    log.info(
        "%s: %d/%d nodes (%s), %s, %.1f s%s",
        name,
        len(report.accepted),
        report.asked,
        ", ".join(report.accepted),
        metrics,
        report.seconds,
        f"; dropped: {'; '.join(report.dropped)}" if report.dropped else "",
    )
