"""The coordinator's part in cross-site matching: a blind aggregator of tokens and ciphertexts.

One job over the enrolled members, in the steps of :mod:`fedrisk.protos.matching`:

1. **Tokens.** Each node sends its blind tokens, signed, or refuses the job (its policy).
   *Learns:* how many tokens each node sent.
2. **Blind join** (:func:`fedrisk.coordinator.blindjoin.join`). *Learns:* which tokens occur at
   how many nodes; nothing about the keys behind them.
3. **Encrypted values.** Each node gets the slots of its shared keys and returns BFV
   ciphertexts. The coordinator adds them and masks each slot so only the sign of
   ``sum − limit`` survives (:func:`fedrisk.crypto.blindsum.mask_sign`); for a statistic it
   keeps the sum. It hides every slot a node has no key in, and returns the result.
   *Learns:* ciphertext sizes, and nothing of any value: it holds the public context only.

   If a node drops out here, the groups it was in would miss its values, or its limit if it
   was their leader. The join is therefore made again without that node.
4. **Decisions** stay at the nodes. Each answers with how many of its settlements it flagged,
   which the coordinator reports to the operator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import tenseal as ts
from numpy.typing import NDArray

from fedrisk.coordinator.blindjoin import Layout, join
from fedrisk.coordinator.exchange import Exchange
from fedrisk.crypto import blindsum, he
from fedrisk.crypto.identity import PublicIdentity
from fedrisk.crypto.signed import ReplayGuard, SignedMessageError, verify_message
from fedrisk.protos.matching import (
    TOKENS,
    VALUES,
    JobSpec,
    MatchTask,
    PayloadError,
    job_spec,
    pack_ciphertexts,
    unpack_ciphertexts,
    unpack_token_reply,
)
from fedrisk.protos.records import RecordError, Value, content, get_bytes, get_int, record

log = logging.getLogger("fedrisk.coordinator")


@dataclass
class JobReport:
    """What the operator sees of one job: who took part, sizes, and flag counts per site."""

    job: str
    window: str
    nodes: int
    tokens: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # site → the node's reason
    dropped: dict[str, str] = field(default_factory=dict)  # site → why it was left out
    shared_groups: int = 0
    bytes_in: dict[str, int] = field(default_factory=dict)
    bytes_out: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


Progress = Callable[[str], None]


def run_job(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    public_context: bytes,
    task: MatchTask,
    progress: Progress = lambda step: None,
) -> JobReport:
    """Run ``task`` over ``nodes`` (Flower node id → member identity); see the module doc."""
    started = time.perf_counter()
    spec = job_spec(task.job)
    context = he.load_context(public_context)
    if not he.is_public(context):
        raise blindsum.BlindSumError("the coordinator was handed a context that can decrypt")
    report = JobReport(task.job, task.window, len(nodes))
    progress("tokens")
    taking_part, tokens, slots_per_key = _tokens(exchange, nodes, task, report)
    results: dict[int, bytes] = {}
    while True:
        layout = join({str(n): tokens[n] for n in taking_part}, spec.min_sites, slots_per_key)
        report.shared_groups = layout.groups
        if not spec.attributes or not layout.groups:
            break
        progress(f"values ({layout.groups:,} groups)")
        answered = _values(exchange, nodes, taking_part, task, spec, layout, report)
        if set(answered) == set(taking_part):
            progress("sums")
            results = _sums(context, spec, layout, answered)
            break
        taking_part = sorted(answered)  # someone dropped: join again without them
    progress("results")
    _results(exchange, nodes, taking_part, task, layout, results, report)
    report.seconds = time.perf_counter() - started
    log.info(
        "%s %s: %d shared groups, flagged %s%s",
        task.job,
        task.window,
        report.shared_groups,
        report.flagged,
        f", refused by {report.refused}" if report.refused else "",
    )
    return report


def _tokens(
    exchange: Exchange, nodes: Mapping[int, PublicIdentity], task: MatchTask, report: JobReport
) -> tuple[list[int], dict[int, NDArray[np.uint8]], int]:
    replies = exchange({n: ("query.match_tokens", content(task.fields())) for n in nodes})
    guard, tokens, shapes = ReplayGuard(), {}, {}
    for node, identity in sorted(nodes.items()):
        site = identity.site_id
        if node not in replies:
            report.dropped[site] = "no answer"
            continue
        try:
            config = record(replies[node])
            if "refused" in config:
                report.refused[site] = str(config["refused"])
                continue
            signed = get_bytes(config, "tokens")
            payload = verify_message(signed, identity, TOKENS, task.context("tokens"), guard)
            shapes[node], tokens[node] = unpack_token_reply(payload.payload)
        except (RecordError, SignedMessageError, PayloadError) as error:
            report.dropped[site] = f"refused ({error})"
            continue
        report.tokens[site] = len(tokens[node])
        report.bytes_in[site] = len(signed)
    if len(set(shapes.values())) > 1:
        raise PayloadError(f"the nodes disagree on the job's layout (slots per key: {shapes})")
    return sorted(tokens), tokens, next(iter(shapes.values()), 1)


def _values(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    taking_part: list[int],
    task: MatchTask,
    spec: JobSpec,
    layout: Layout,
    report: JobReport,
) -> dict[int, dict[tuple[int, int], bytes]]:
    sends = {}
    for node in taking_part:
        fields = {**task.fields(), **layout.placements[str(node)].fields()}
        report.bytes_out[nodes[node].site_id] = sum(
            len(v) for v in fields.values() if isinstance(v, bytes)
        )
        sends[node] = ("query.match_values", content(fields))
    replies = exchange(sends)
    guard, answered = ReplayGuard(), {}
    for node in taking_part:
        identity = nodes[node]
        if node not in replies:
            report.dropped[identity.site_id] = "no answer with values"
            continue
        try:
            signed = get_bytes(record(replies[node]), "values")
            payload = verify_message(signed, identity, VALUES, task.context("values"), guard)
            parts = unpack_ciphertexts(payload.payload)
            allowed = layout.placements[str(node)].chunks(blindsum.SLOTS)
            if any(a >= spec.attributes or c not in allowed for a, c in parts):
                raise PayloadError("ciphertexts for slots the node was not given")
        except (RecordError, SignedMessageError, PayloadError) as error:
            report.dropped[identity.site_id] = f"values refused ({error})"
            continue
        report.bytes_in[identity.site_id] = report.bytes_in.get(identity.site_id, 0) + len(signed)
        answered[node] = parts
    return answered


def _sums(
    context: ts.Context,
    spec: JobSpec,
    layout: Layout,
    values: Mapping[int, dict[tuple[int, int], bytes]],
) -> dict[int, bytes]:
    """Per node, its packed result ciphertexts: summed, masked (matching jobs), others hidden."""
    contributors = max(int(p.sites.max()) for p in layout.placements.values() if len(p.sites))
    keys = sorted({key for parts in values.values() for key in parts})
    out: dict[int, dict[tuple[int, int], bytes]] = {node: {} for node in values}
    for attribute, chunk in keys:
        holders = [n for n, parts in values.items() if (attribute, chunk) in parts]
        total = blindsum.add(context, [values[n][(attribute, chunk)] for n in holders])
        if spec.masked:
            total = blindsum.mask_sign(total, contributors)
        for node in holders:
            own = layout.own_slots(str(node))
            own = own[own // blindsum.SLOTS == chunk] % blindsum.SLOTS
            out[node][(attribute, chunk)] = blindsum.keep_only(total, own)
    return {node: pack_ciphertexts(parts) for node, parts in out.items()}


def _results(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    taking_part: list[int],
    task: MatchTask,
    layout: Layout,
    results: Mapping[int, bytes],
    report: JobReport,
) -> None:
    sends = {}
    for node in taking_part:
        fields: dict[str, Value] = {**task.fields(), **layout.placements[str(node)].fields()}
        if node in results:
            fields["results"] = results[node]
        site = nodes[node].site_id
        sent = sum(len(v) for v in fields.values() if isinstance(v, bytes))
        report.bytes_out[site] = report.bytes_out.get(site, 0) + sent
        sends[node] = ("query.match_result", content(fields))
    replies = exchange(sends)
    for node in taking_part:
        site = nodes[node].site_id
        try:
            report.flagged[site] = get_int(record(replies[node]), "flagged")
        except (KeyError, RecordError) as error:
            report.dropped[site] = f"no decision ({error})"
