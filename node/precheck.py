"""PreCheck (事前提醒): the check of one claim the hospital's HIS sends before an order.

This module is the check itself, as the worker process runs it (``precheckworker``); the gRPC
front (``precheckfront``, ``serve``) only forwards a claim's bytes and answers with what comes
back. For each claim: validate it value by value (INVALID_ARGUMENT naming the field), replace its
identifiers by the node's pseudonyms, check every enabled single-site rule against the claim
and the history the node holds (a box already settled here, the doctor's other orders, the
patient's recent stays), answer allow / warn / block with the hits and their evidence, and
queue an audit entry (purpose ``precheck``; the raw patient ID is never stored, logged or
audited — it lives only in the request). What the HIS learns: the verdict and the evidence, which
names items, codes and settlement ids of this node, never another patient's identity.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from grpc import StatusCode

from fedrisk.models.bundle import Bundle
from fedrisk.models.claimfeatures import FeatureContext, claim_vector
from fedrisk.models.kb import KnowledgeBase
from fedrisk.models.rowpredict import RowPredictor
from fedrisk.models.rules.claimcheck import Claim, check_claim, decision
from fedrisk.models.rules.pack import RulePack
from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.models.scoring import SEVERITY as MODEL_SEVERITY
from fedrisk.models.scoring import top_reasons
from fedrisk.node import registry
from fedrisk.node.access import AccessDeniedError, SiteAccess
from fedrisk.node.auditqueue import AuditQueue
from fedrisk.node.claimvalidate import (
    ClaimError,
    check_lines,
    check_settlement,
    to_claim,
    trimmed_message,
)
from fedrisk.node.history import StoreHistory, load_history
from fedrisk.protos.fedrisk.v1 import precheck_pb2

DECISIONS = {
    "allow": precheck_pb2.ALLOW,
    "warn": precheck_pb2.WARN,
    "block": precheck_pb2.BLOCK,
}


@dataclass(frozen=True)
class Scorer:
    """The active model, and the node-wide aggregates its features need."""

    bundle: Bundle
    predictor: RowPredictor
    context: FeatureContext

    def score(self, claim: Claim, kb: KnowledgeBase, hits: list[str]) -> precheck_pb2.ModelScore:
        """The claim's score; the top reasons when it is at or above the threshold."""
        row = claim_vector(claim, self.context, kb, hits)
        score = self.predictor.score(row)
        flagged = score >= self.bundle.threshold
        why = top_reasons(row, self.predictor.contributions(row), self.bundle) if flagged else []
        return precheck_pb2.ModelScore(
            model=self.bundle.bundle_id,
            score=score,
            threshold=self.bundle.threshold,
            flagged=flagged,
            reasons=[_reason(r) for r in why],
        )


@dataclass(frozen=True)
class Checker:
    """Everything a check needs, loaded once when the service starts (or reloads)."""

    access: SiteAccess
    kb: KnowledgeBase
    pack: RulePack
    history: StoreHistory
    pseudonym_key: bytes
    scorer: Scorer | None = None

    def verdict(self, claim: precheck_pb2.Claim) -> precheck_pb2.Verdict:
        """The verdict on one claim; raises :class:`ClaimError` for a malformed one."""
        site_id = self.access.home.site_id
        settlement = trimmed_message(claim.settlement, SETTLEMENT_COLUMNS)
        lines = [trimmed_message(line, LINE_COLUMNS) for line in claim.lines]
        check_settlement(settlement, site_id)
        check_lines(lines, settlement["settlement_id"], site_id, self.kb)
        checked = to_claim(settlement, lines, self.pseudonym_key)
        hits = check_claim(checked, self.history, self.kb, self.pack)
        answer = decision(hits)
        verdict = precheck_pb2.Verdict(
            request_id=claim.request_id,
            settlement_id=checked.settlement_id,
            hits=[_hit(h.rule_id, h.severity, h.evidence) for h in hits],
            kb_version=self.kb.version,
            rule_pack_version=self.pack.version,
        )
        if self.scorer is not None:
            model = self.scorer.score(checked, self.kb, [h.rule_id for h in hits])
            verdict.model.CopyFrom(model)
            verdict.model_version = model.model
            if model.flagged and answer == "allow":
                answer = MODEL_SEVERITY  # a model asks for a review; it never blocks alone
        verdict.decision = DECISIONS[answer]
        return verdict


def load_checker(access: SiteAccess) -> Checker:
    """The rules' history and, when a model is active, the model with its aggregates."""
    home = access.home
    bundle = registry.active(access)
    loaded = load_history(access, with_features=bundle is not None)
    scorer = None
    if bundle is not None and loaded.features is not None:
        # One thread: OpenMP's wake-up and spin-wait after each one-row call cost ~110 us of
        # CPU a claim here, more than the check itself.
        scorer = Scorer(bundle, RowPredictor(bundle.booster(), num_threads=1), loaded.features)
    kb, pack, key = home.knowledge_base(), home.rule_pack(), home.secret("pseudonym")
    checker = Checker(access, kb, pack, loaded.history, key, scorer)
    # The history is millions of long-lived objects: left to the collector, each full collection
    # walks them all, a pause of tens of ms in the middle of some call. Freezing moves them out.
    gc.collect()
    gc.freeze()
    return checker


def answer_claim(checker: Checker, audit: AuditQueue, request: bytes) -> tuple[StatusCode, bytes]:
    """The answer to one claim's bytes: OK and the verdict's bytes, or a refusal's status and
    details. Every claim the policy lets through is queued as an audit entry before it is
    checked, so a malformed one is audited too; a denial is logged by the gate itself."""
    try:
        claim = precheck_pb2.Claim.FromString(request)
    except DecodeError:
        return StatusCode.INVALID_ARGUMENT, b"the request is not a fedrisk.v1.Claim message"
    try:
        entry = checker.access.allowed_entry("read", "claims", ["*"], 1 + len(claim.lines))
    except AccessDeniedError as error:
        return StatusCode.PERMISSION_DENIED, str(error).encode()
    audit.submit(entry)
    try:
        return StatusCode.OK, checker.verdict(claim).SerializeToString()
    except ClaimError as error:
        return StatusCode.INVALID_ARGUMENT, str(error).encode()


def _reason(reason: dict[str, object]) -> precheck_pb2.Reason:
    value = reason["value"]
    return precheck_pb2.Reason(
        feature=str(reason["feature"]),
        value=float("nan") if value is None else float(str(value)),
        contribution=float(str(reason["contribution"])),
    )


def _hit(rule_id: str, severity: str, evidence: str) -> precheck_pb2.RuleHit:
    return precheck_pb2.RuleHit(rule_id=rule_id, severity=severity, evidence_json=evidence)
