"""The node's Flower ClientApp: enrollment and federated training, one handler per step.

The SuperNode starts it with ``--node-config``: ``home`` (the node home, required), and for a
model owner's own features ``table`` and ``label`` (a numeric CSV at this node). It acts as the
``operator`` role of the node's access policy (``role`` to change it): enrollment under purpose
``enrollment``, training under ``training``; every read and every refused message is in the
node's audit log. The node's keys are read from the home (``FEDRISK_NODE_PASSPHRASE`` for a
sealed one).

Handlers (message types): ``query.identity`` (the node's public identity and the epoch it holds),
``query.make_epoch`` (key creator only: seal a new epoch to the enrolled members),
``query.accept_epoch`` (keep the epoch sealed to this node), ``train`` (one bagging round,
:mod:`fedrisk.node.fedtrain`) and the three steps of a cross-site matching job,
``query.match_tokens``, ``query.match_values`` and ``query.match_result``
(:mod:`fedrisk.node.matching`; the job's name is the policy purpose). Every payload a node
sends is a signed message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fedrisk.crypto.identity import Identity, PublicIdentity
from fedrisk.crypto.signed import sign_message
from fedrisk.models.errors import FedriskError
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.fedtrain import (
    Contribution,
    LocalData,
    Published,
    RoundTask,
    audited_round,
    claims_data,
    publish,
    table_data,
)
from fedrisk.node.home import NodeHome, open_home
from fedrisk.node.matching.jobs import result_step, token_step, values_step
from fedrisk.node.membership import MembershipError, accept_epoch, load, make_epoch, save
from fedrisk.protos.matching import Assignment, MatchTask, job_field
from fedrisk.protos.records import (
    Value,
    content,
    get_bytes,
    get_bytes_list,
    get_int,
    get_int_list,
    get_optional_bytes,
    get_str,
    get_str_list,
    record,
)

app = ClientApp()
ACTOR = "flower-clientapp"


@app.query("identity")
def identity(msg: Message, context: Context) -> Message:
    """The node's public identity, and which epoch of the federation it holds (0: none)."""
    home = _home(context)
    me, federation = _identity(home), get_str(record(msg), "federation")
    try:
        held = load(home, federation).epoch
    except MembershipError:
        held = 0
    payload = json.dumps({"identity": me.public.to_json(), "epoch": held}).encode()
    signed = sign_message(me, "identity", f"federation={federation}", payload)
    return Message(content=content({"identity": signed}), reply_to=msg)


@app.query("make_epoch")
def make(msg: Message, context: Context) -> Message:
    """Key creator: a new epoch sealed to every enrolled identity this node trusts."""
    home, config = _home(context), record(msg)
    access = _access(home, context, "enrollment")
    access.require_writes(["federation"])
    enrolled = [PublicIdentity.from_json(json.loads(b)) for b in get_bytes_list(config, "enrolled")]
    new = make_epoch(
        home, _identity(home), get_str(config, "federation"), get_int(config, "epoch"), enrolled
    )
    for refused in new.refused:
        access.refuse("write", "federation", f"no envelope for untrusted {refused}")
    access.write("federation", len(new.membership.members), lambda: save(home, new.membership))
    fields: dict[str, Value] = {
        "recipients": list(new.envelopes),
        "envelopes": list(new.envelopes.values()),
        "public_context": new.public_context,
        "creator": new.membership.creator,
    }
    return Message(content=content(fields), reply_to=msg)


@app.query("accept_epoch")
def accept(msg: Message, context: Context) -> Message:
    """Keep the epoch the key creator sealed to this node (refused, and audited, otherwise)."""
    home, config = _home(context), record(msg)
    access = _access(home, context, "enrollment")
    federation, epoch = get_str(config, "federation"), get_int(config, "epoch")
    creator, envelope = get_str(config, "creator"), get_bytes(config, "envelope")
    try:
        membership = access.write(
            "federation",
            1,
            lambda: accept_epoch(home, _identity(home), creator, federation, epoch, envelope),
        )
    except MembershipError as error:
        access.refuse("write", "federation", str(error))
        raise
    fields: dict[str, Value] = {"epoch": membership.epoch, "members": len(membership.members)}
    return Message(content=content(fields), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One bagging round: rebuild the global model, evaluate it, boost and seal new trees."""
    home, config = _home(context), record(msg)
    access = _access(home, context, "training")
    membership = load(home, get_str(config, "federation"), get_int(config, "epoch"))
    contributions = _contributions(config)
    task = RoundTask(
        get_str(config, "run"),
        get_int(config, "round"),
        contributions,
        get_int(config, "trees"),
        final=bool(get_int(config, "final")),
    )
    reply = audited_round(access, membership, _identity(home), _data(access, context), task)
    fields: dict[str, Value] = {"rows": reply.rows}
    if reply.trees is not None:
        fields["trees"] = reply.trees
    if reply.evaluation is not None:
        fields["evaluation"] = reply.evaluation
    return Message(content=content(fields), reply_to=msg)


@app.query("publish")
def publish_model(msg: Message, context: Context) -> Message:
    """Write the run's final model as an unsigned bundle under
    ``HOME/federation/<federation>/bundles/<run>-epoch-<n>/`` for the model owner to sign."""
    home, config = _home(context), record(msg)
    access = _access(home, context, "training")
    membership = load(home, get_str(config, "federation"), get_int(config, "epoch"))
    run = get_str(config, "run")
    contributions = _contributions(config)
    published = Published(
        np.asarray(get_int_list(config, "positives"), np.int64),
        np.asarray(get_int_list(config, "negatives"), np.int64),
        json.loads(get_str(config, "metrics")),
        json.loads(get_str(config, "metadata")),
    )
    folder = home.root / "federation" / membership.federation / "bundles"
    out = folder / f"{run}-epoch-{membership.epoch}"
    bundle = access.write(
        "federation", 1, lambda: publish(membership, run, contributions, published, out)
    )
    return Message(content=content({"bundle": str(bundle)}), reply_to=msg)


@app.query("match_tokens")
def match_tokens(msg: Message, context: Context) -> Message:
    """Matching, step 1: this node's blind tokens for the job, or its refusal (audited)."""
    return _match_reply("match_tokens", msg, context)


@app.query("match_values")
def match_values(msg: Message, context: Context) -> Message:
    """Matching, step 2: ciphertexts of this node's values in the slots it was given."""
    return _match_reply("match_values", msg, context)


@app.query("match_result")
def match_result(msg: Message, context: Context) -> Message:
    """Matching, step 3: decide from this node's slots and write its flags."""
    return _match_reply("match_result", msg, context)


def match_step(
    step: str, config: ConfigRecord, home: NodeHome, principal: Principal
) -> dict[str, Value]:
    """The reply fields of one matching ``step`` for every job the message names (also what an
    in-process harness calls). A job that fails here is answered with its error, not the others."""
    fields: dict[str, Value] = {}
    for job in get_str_list(config, "jobs"):
        try:
            fields.update(_job_step(step, config, home, principal, _task(config, job)))
        except (FedriskError, ValueError) as error:
            fields[job_field(job, "error")] = f"{type(error).__name__}: {error}"
    return fields


def _job_step(
    step: str, config: ConfigRecord, home: NodeHome, principal: Principal, task: MatchTask
) -> dict[str, Value]:
    name = task.job
    if step == "match_tokens":
        reply = token_step(home, _identity(home), principal, task)
        return {job_field(name, key): value for key, value in reply.items()}
    assignment = Assignment.from_fields(name, _bytes_fields(config))
    if step == "match_values":
        signed = values_step(home, _identity(home), principal, task, assignment)
        return {job_field(name, "values"): signed}
    results = get_optional_bytes(config, job_field(name, "results"))
    flagged = result_step(home, principal, task, assignment, results)
    return {job_field(name, "flagged"): flagged}


def _match_reply(step: str, msg: Message, context: Context) -> Message:
    fields = match_step(step, record(msg), _home(context), _principal(context))
    return Message(content=content(fields), reply_to=msg)


def _task(config: ConfigRecord, job: str) -> MatchTask:
    return MatchTask(
        get_str(config, "federation"),
        get_int(config, "epoch"),
        get_str(config, "run"),
        job,
        get_str(config, "window"),
    )


def _bytes_fields(config: ConfigRecord) -> dict[str, bytes]:
    return {key: value for key, value in config.items() if isinstance(value, bytes)}


def _contributions(config: ConfigRecord) -> list[Contribution]:
    """The ledger the coordinator relays: every accepted contribution with its round."""
    rounds = get_int_list(config, "contribution_rounds")
    messages = get_bytes_list(config, "contributions")
    return [Contribution(r, m) for r, m in zip(rounds, messages, strict=True)]


def _data(access: SiteAccess, context: Context) -> LocalData:
    table = context.node_config.get("table")
    if table:
        return table_data(Path(str(table)), str(context.node_config.get("label", "label")))
    return claims_data(access)


def _home(context: Context) -> NodeHome:
    home = context.node_config.get("home")
    if not home:
        raise FedriskError("the SuperNode needs --node-config home=<node home>")
    return open_home(Path(str(home)))


def _identity(home: NodeHome) -> Identity:
    passphrase = os.environ.get("FEDRISK_NODE_PASSPHRASE")
    return home.identity(passphrase.encode() if passphrase else None)


def _principal(context: Context) -> Principal:
    return Principal(ACTOR, str(context.node_config.get("role", "operator")))


def _access(home: NodeHome, context: Context, purpose: str) -> SiteAccess:
    return SiteAccess.open(home, _principal(context), purpose)
