"""The jobs a node can take part in, by name, and the node's side of each step.

The access policy's purpose for a job is the job's name: a node whose policy does not grant it
refuses the job before reading anything, and the denial is in its audit log. A job whose rule
the node's rule pack disables is refused as well.
"""

from __future__ import annotations

from fedrisk.crypto.identity import Identity
from fedrisk.node.access import AccessDeniedError, Principal, SiteAccess
from fedrisk.node.home import NodeHome
from fedrisk.node.matching import steps
from fedrisk.node.matching.duplicates import Duplicates
from fedrisk.node.matching.job import MatchJob
from fedrisk.node.matching.pharmacists import Pharmacists
from fedrisk.node.matching.prescribers import Prescribers
from fedrisk.node.matching.results import write_flags
from fedrisk.node.matching.spend import Spend
from fedrisk.node.matching.supply import Supply
from fedrisk.node.membership import load
from fedrisk.protos.matching import Assignment, MatchTask, check_window, job_spec


class JobRefusedError(Exception):
    """This node does not take part in the job; the text is the reason sent back."""


def open_job(access: SiteAccess, name: str, window: str) -> MatchJob:
    """The job ``name`` over ``window`` (``all`` or ``YYYY-MM``), loaded from this node's data."""
    job_spec(name)
    check_window(window)
    home = access.home
    pack, kb = home.rule_pack(), home.knowledge_base()
    if not pack.enabled(name):
        raise JobRefusedError(f"rule {name} is disabled in this node's rule pack {pack.version}")
    access.require_writes(["flags"])
    if name == "duplicate_trace_code":
        return Duplicates(access, window)
    if name == "monthly_pharmacy_spend":
        return Spend.load(access, window, pack)
    if name == "cross_site_over_quantity":
        return Supply(access, window, kb, pack)
    if name == "pharmacist_multi_site":
        return Pharmacists(access, window, pack)
    return Prescribers(access, window, kb, pack)


def token_step(
    home: NodeHome, identity: Identity, principal: Principal, task: MatchTask
) -> dict[str, bytes | str]:
    """Step 1 at this node: ``{"tokens": …}``, or ``{"refused": reason}`` (audited)."""
    access = SiteAccess.open(home, principal, task.job)
    try:
        job = open_job(access, task.job, task.window)
    except (AccessDeniedError, JobRefusedError) as refusal:
        return {"refused": str(refusal)}
    membership = load(home, task.federation, task.epoch)
    return {"tokens": steps.token_reply(steps.prepare(job, membership), identity, task)}


def values_step(
    home: NodeHome,
    identity: Identity,
    principal: Principal,
    task: MatchTask,
    assignment: Assignment,
) -> bytes:
    """Step 2 at this node: the signed ciphertexts of its shared keys."""
    access = SiteAccess.open(home, principal, task.job)
    membership = load(home, task.federation, task.epoch)
    prepared = steps.prepare(open_job(access, task.job, task.window), membership)
    return steps.values_reply(prepared, assignment, membership, identity, task)


def result_step(
    home: NodeHome,
    principal: Principal,
    task: MatchTask,
    assignment: Assignment,
    results: bytes | None,
) -> int:
    """Step 3 at this node: decide, write the flags; returns how many settlements it flagged."""
    access = SiteAccess.open(home, principal, task.job)
    membership = load(home, task.federation, task.epoch)
    prepared = steps.prepare(open_job(access, task.job, task.window), membership)
    found = steps.decide(prepared, assignment, results, membership)
    write_flags(access, task.job, task.window, found)
    return len({f.settlement_id for f in found})
