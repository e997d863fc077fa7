"""The node's steps of one matching job (the protocol of :mod:`fedrisk.protos.matching`).

What the node sends and learns at each step:

1. :func:`token_reply` — sends one blind token per key, sorted, signed. Tokens are HMACs under a
   key of the federation secret for this job and window, which the coordinator does not hold.
2. :func:`values_reply` — learns which of its keys other nodes hold, and at how many nodes
   (the assignment). Sends BFV ciphertexts of its values in those keys' slots, signed.
3. :func:`decide` — decrypts the returned slots of its own keys. Matching jobs give only a
   masked sign (over the limit or not); statistics give the federation's sum for the keys it
   holds. Every other slot arrives as random noise.

Nodes are stateless between steps: each step loads the job again from the store. Equal data
gives equal keys and tokens; a changed store gives different tokens, so an assignment that
does not fit is refused.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedrisk.crypto import blindsum, he
from fedrisk.crypto.identity import Identity
from fedrisk.crypto.signed import sign_message
from fedrisk.crypto.tokens import TOKEN_BYTES, blind_tokens, token_key
from fedrisk.node.matching.job import Found, Int64s, MatchJob
from fedrisk.node.membership import Membership
from fedrisk.protos.matching import (
    TOKENS,
    VALUES,
    Assignment,
    MatchTask,
    PayloadError,
    job_spec,
    pack_ciphertexts,
    pack_token_reply,
    token_order,
    unpack_ciphertexts,
)


@dataclass(frozen=True)
class Prepared:
    """A job's tokens in the order sent, and which entry each one stands for."""

    job: MatchJob
    tokens: NDArray[np.uint8]  # sorted
    entry: Int64s  # entry index of each sorted token


def prepare(job: MatchJob, membership: Membership) -> Prepared:
    """Blind every entry's key under its window's token key."""
    keys = job.keys()
    by_window: dict[str, list[int]] = defaultdict(list)
    for entry, (window, _) in enumerate(keys):
        by_window[window].append(entry)
    tokens = np.zeros((len(keys), TOKEN_BYTES), np.uint8)
    for window, entries in by_window.items():
        secret = token_key(membership.secret, job.name, window)
        made = blind_tokens(secret, [keys[e][1] for e in entries])
        tokens[entries] = np.frombuffer(b"".join(made), np.uint8).reshape(-1, TOKEN_BYTES)
    order = token_order(tokens)
    ordered = tokens[order]
    if len(ordered) > 1 and bool(np.any(np.all(ordered[1:] == ordered[:-1], axis=1))):
        raise PayloadError(f"{job.name}: two entries with one key (a bug in the job)")
    return Prepared(job, ordered, order)


def token_reply(prepared: Prepared, identity: Identity, task: MatchTask) -> bytes:
    """Step 1: the signed, sorted tokens and the job's slots per key."""
    payload = pack_token_reply(prepared.job.slots_per_key, prepared.tokens)
    return sign_message(identity, TOKENS, task.context("tokens"), payload)


def values_reply(
    prepared: Prepared,
    assignment: Assignment,
    membership: Membership,
    identity: Identity,
    task: MatchTask,
) -> bytes:
    """Step 2: ciphertexts of this node's values in its slots, signed."""
    entries = _entries(prepared, assignment)
    spec = job_spec(prepared.job.name)
    values = prepared.job.values(entries, assignment.leader)
    positions = _positions(assignment, prepared.job.slots_per_key).ravel()
    cap = blindsum.CAP if spec.masked else blindsum.STATISTIC_CAP
    context = he.load_context(membership.he_context)
    parts: dict[tuple[int, int], bytes] = {}
    for attribute in range(spec.attributes):
        column = values[:, attribute, :].ravel()
        for chunk, sealed in blindsum.encrypt_slots(context, positions, column, cap).items():
            parts[(attribute, chunk)] = sealed
    return sign_message(identity, VALUES, task.context("values"), pack_ciphertexts(parts))


def decide(
    prepared: Prepared,
    assignment: Assignment,
    results: bytes | None,
    membership: Membership,
) -> list[Found]:
    """Step 3: this node's flags, from its own slots and from the keys only it holds."""
    entries = _entries(prepared, assignment)
    spec = job_spec(prepared.job.name)
    outcome = None
    if spec.attributes:
        outcome = _outcome(prepared, assignment, results, membership, spec.attributes)
    found = prepared.job.decide(entries, outcome, assignment.sites)
    alone = np.ones(len(prepared.entry), bool)
    alone[entries] = False
    return found + prepared.job.local(np.flatnonzero(alone))


def _outcome(
    prepared: Prepared,
    assignment: Assignment,
    results: bytes | None,
    membership: Membership,
    attributes: int,
) -> Int64s:
    width = prepared.job.slots_per_key
    outcome = np.zeros((len(assignment.index), attributes, width), np.int64)
    if not len(assignment.index):
        return outcome
    if results is None:
        raise PayloadError("the coordinator sent an assignment without its results")
    parts = unpack_ciphertexts(results)
    context = he.load_context(membership.he_context)
    positions = _positions(assignment, width)
    chunk_of_row = assignment.base // blindsum.SLOTS
    for attribute in range(attributes):
        for chunk in np.unique(chunk_of_row).tolist():
            if (attribute, chunk) not in parts:
                raise PayloadError(f"no result for attribute {attribute}, chunk {chunk}")
            rows = chunk_of_row == chunk
            own = positions[rows].ravel() % blindsum.SLOTS
            read = blindsum.decrypt_slots(context, parts[(attribute, chunk)], own)
            outcome[rows, attribute, :] = read.reshape(-1, width)
    return outcome


def _entries(prepared: Prepared, assignment: Assignment) -> Int64s:
    """The entries the assignment names; refuses one that does not fit these tokens."""
    index = assignment.index
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(prepared.entry)):
        raise PayloadError("the assignment names tokens this node did not send")
    seen = np.zeros(len(prepared.entry), bool)
    seen[index] = True
    if int(seen.sum()) != len(index):
        raise PayloadError("the assignment names one token twice")
    if len(assignment.base) and int(assignment.base.min()) < 0:
        raise PayloadError("the assignment has a negative slot")
    return prepared.entry[index]


def _positions(assignment: Assignment, width: int) -> Int64s:
    return assignment.base[:, None] + np.arange(width, dtype=np.int64)
