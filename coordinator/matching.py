"""The coordinator's part in cross-site matching: a blind aggregator of tokens and ciphertexts.

The jobs of a run go through the steps of :mod:`fedrisk.protos.matching` together (three
exchanges with the nodes, whatever the number of jobs):

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
   was their leader. That job's join is therefore made again without the node, and step 3
   asked again of the others.
4. **Decisions** stay at the nodes. Each answers with how many of its settlements it flagged,
   which the coordinator reports to the operator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import tenseal as ts
from flwr.app import ConfigRecord, RecordDict
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
    job_field,
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
Fields = dict[str, Value]
Parts = dict[tuple[int, int], bytes]


@dataclass
class _Job:
    """One job's state during a run: who takes part, their tokens, the layout, the results."""

    task: MatchTask
    report: JobReport
    tokens: dict[int, NDArray[np.uint8]] = field(default_factory=dict)
    slots_per_key: int = 1
    layout: Layout | None = None
    results: dict[int, bytes] = field(default_factory=dict)

    @property
    def spec(self) -> JobSpec:
        return job_spec(self.task.job)

    @property
    def taking_part(self) -> list[int]:
        return sorted(self.tokens)

    def join(self) -> Layout:
        senders = {str(node): tokens for node, tokens in self.tokens.items()}
        self.layout = join(senders, self.spec.min_sites, self.slots_per_key)
        self.report.shared_groups = self.layout.groups
        return self.layout

    def placement(self, node: int) -> dict[str, bytes]:
        assert self.layout is not None
        return self.layout.placements[str(node)].fields(self.task.job)


def run_jobs(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    public_context: bytes,
    tasks: Sequence[MatchTask],
    progress: Progress = lambda step: None,
) -> list[JobReport]:
    """Run ``tasks`` (one run and window) over ``nodes`` (Flower node id → member identity)."""
    started = time.perf_counter()
    context = he.load_context(public_context)
    if not he.is_public(context):
        raise blindsum.BlindSumError("the coordinator was handed a context that can decrypt")
    jobs = [_Job(task, JobReport(task.job, task.window, len(nodes))) for task in tasks]
    progress("tokens")
    _tokens(exchange, nodes, jobs)
    pending = [job for job in jobs if job.join().groups and job.spec.attributes]
    while pending:
        progress("values")
        answered = _values(exchange, nodes, pending)
        again = []
        for job in pending:
            if set(answered[job.task.job]) == set(job.taking_part):
                progress(f"sums {job.task.job}")
                job.results = _sums(context, job, answered[job.task.job])
                continue
            job.tokens = {n: t for n, t in job.tokens.items() if n in answered[job.task.job]}
            if job.join().groups:  # someone dropped: join again without them
                again.append(job)
        pending = again
    progress("results")
    _results(exchange, nodes, jobs)
    for job in jobs:
        job.report.seconds = time.perf_counter() - started
        log.info(
            "%s %s: %d shared groups, flagged %s%s",
            job.task.job,
            job.task.window,
            job.report.shared_groups,
            job.report.flagged,
            f", refused by {job.report.refused}" if job.report.refused else "",
        )
    return [job.report for job in jobs]


def run_job(
    exchange: Exchange,
    nodes: Mapping[int, PublicIdentity],
    public_context: bytes,
    task: MatchTask,
    progress: Progress = lambda step: None,
) -> JobReport:
    """One job alone (:func:`run_jobs` with one task)."""
    return run_jobs(exchange, nodes, public_context, [task], progress)[0]


def _failed(config: ConfigRecord, job: str) -> str | None:
    """The reason a node gave for not completing ``job`` (its step raised), if it did."""
    reason = config.get(job_field(job, "error"))
    return None if reason is None else f"error at the node: {reason!s}"


def _sends(
    nodes: Iterable[int],
    jobs: Sequence[_Job],
    step: str,
    extra: Callable[[_Job, int], Mapping[str, Value]],
) -> dict[int, tuple[str, RecordDict]]:
    """One message per node naming the jobs it takes part in, with each job's fields."""
    sends = {}
    for node in nodes:
        mine = [job for job in jobs if node in job.tokens or step == "match_tokens"]
        if not mine:
            continue
        fields: Fields = {**mine[0].task.fields(), "jobs": [job.task.job for job in mine]}
        for job in mine:
            fields.update(extra(job, node))
        sends[node] = (f"query.{step}", content(fields))
    return sends


def _tokens(exchange: Exchange, nodes: Mapping[int, PublicIdentity], jobs: list[_Job]) -> None:
    replies = exchange(_sends(nodes, jobs, "match_tokens", lambda job, node: {}))
    guard = ReplayGuard()
    for job in jobs:
        shapes = {}
        for node, identity in sorted(nodes.items()):
            site, name = identity.site_id, job.task.job
            if node not in replies:
                job.report.dropped[site] = "no answer"
                continue
            try:
                config = record(replies[node])
                if failed := _failed(config, name):
                    job.report.dropped[site] = failed
                    continue
                if job_field(name, "refused") in config:
                    job.report.refused[site] = str(config[job_field(name, "refused")])
                    continue
                signed = get_bytes(config, job_field(name, "tokens"))
                context = job.task.context("tokens")
                verified = verify_message(signed, identity, TOKENS, context, guard)
                shapes[node], job.tokens[node] = unpack_token_reply(verified.payload)
            except (RecordError, SignedMessageError, PayloadError) as error:
                job.report.dropped[site] = f"refused ({error})"
                continue
            job.report.tokens[site] = len(job.tokens[node])
            job.report.bytes_in[site] = len(signed)
        if len(set(shapes.values())) > 1:
            raise PayloadError(f"{name}: the nodes disagree on its layout (slots: {shapes})")
        job.slots_per_key = next(iter(shapes.values()), 1)


def _values(
    exchange: Exchange, nodes: Mapping[int, PublicIdentity], jobs: list[_Job]
) -> dict[str, dict[int, Parts]]:
    sends = _sends(nodes, jobs, "match_values", lambda job, node: job.placement(node))
    for job in jobs:
        for node in job.taking_part:
            _add(job.report.bytes_out, nodes[node].site_id, _size(job.placement(node)))
    replies = exchange(sends)
    guard = ReplayGuard()
    answered: dict[str, dict[int, Parts]] = {job.task.job: {} for job in jobs}
    for job in jobs:
        for node in job.taking_part:
            site, name = nodes[node].site_id, job.task.job
            try:
                config = record(replies[node])
                if failed := _failed(config, name):
                    job.report.dropped[site] = failed
                    continue
                signed = get_bytes(config, job_field(name, "values"))
                context = job.task.context("values")
                verified = verify_message(signed, nodes[node], VALUES, context, guard)
                parts = unpack_ciphertexts(verified.payload)
                assert job.layout is not None
                allowed = job.layout.placements[str(node)].chunks(blindsum.SLOTS)
                if any(a >= job.spec.attributes or c not in allowed for a, c in parts):
                    raise PayloadError("ciphertexts for slots the node was not given")
            except KeyError:
                job.report.dropped[site] = "no answer with values"
                continue
            except (RecordError, SignedMessageError, PayloadError) as error:
                job.report.dropped[site] = f"values refused ({error})"
                continue
            _add(job.report.bytes_in, site, len(signed))
            answered[name][node] = parts
    return answered


def _sums(context: ts.Context, job: _Job, values: Mapping[int, Parts]) -> dict[int, bytes]:
    """Per node, its packed result ciphertexts: summed, masked (matching jobs), others hidden."""
    layout = job.layout
    assert layout is not None
    contributors = max(int(p.sites.max()) for p in layout.placements.values() if len(p.sites))
    keys = sorted({key for parts in values.values() for key in parts})
    own = {node: _by_chunk(layout.own_slots(str(node))) for node in values}
    out: dict[int, Parts] = {node: {} for node in values}
    for attribute, chunk in keys:
        holders = [n for n, parts in values.items() if (attribute, chunk) in parts]
        total = blindsum.add(context, [values[n][(attribute, chunk)] for n in holders])
        if job.spec.masked:
            total = blindsum.mask_sign(total, contributors)
        for node in holders:
            out[node][(attribute, chunk)] = blindsum.keep_only(total, own[node][chunk])
    return {node: pack_ciphertexts(parts) for node, parts in out.items()}


def _by_chunk(slots: NDArray[np.int64]) -> dict[int, NDArray[np.int64]]:
    """Absolute slots as offsets within each chunk."""
    chunk = slots // blindsum.SLOTS
    order = np.argsort(chunk, kind="stable")
    parts = np.split(order, np.flatnonzero(np.diff(chunk[order])) + 1) if len(order) else []
    return {int(chunk[part[0]]): slots[part] % blindsum.SLOTS for part in parts}


def _results(exchange: Exchange, nodes: Mapping[int, PublicIdentity], jobs: list[_Job]) -> None:
    def fields(job: _Job, node: int) -> Fields:
        extra: Fields = dict(job.placement(node))
        if node in job.results:
            extra[job_field(job.task.job, "results")] = job.results[node]
        return extra

    sends = _sends(nodes, jobs, "match_result", fields)
    for job in jobs:
        for node in job.taking_part:
            _add(job.report.bytes_out, nodes[node].site_id, _size(fields(job, node)))
    replies = exchange(sends)
    for job in jobs:
        for node in job.taking_part:
            site = nodes[node].site_id
            try:
                config = record(replies[node])
                if failed := _failed(config, job.task.job):
                    job.report.dropped[site] = failed
                    continue
                flagged = get_int(config, job_field(job.task.job, "flagged"))
            except (KeyError, RecordError) as error:
                job.report.dropped[site] = f"no decision ({error})"
                continue
            job.report.flagged[site] = flagged


def _size(fields: Mapping[str, Value]) -> int:
    """The bytes fields of a message (what dominates its size)."""
    return sum(len(v) for v in fields.values() if isinstance(v, bytes))


def _add(counter: dict[str, int], site: str, count: int) -> None:
    counter[site] = counter.get(site, 0) + count
