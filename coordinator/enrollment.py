"""Enrollment as the coordinator runs it: collect identities, relay a new epoch's envelopes.

1. Every connected node answers ``query.identity`` with its public identity, signed by itself
   (proof that it holds the key) and the epoch it holds. Identities the bureau did not register
   (``registry``: a folder of identity files) are refused and reported.
2. When the registered nodes do not all hold the same epoch (or a rotation is asked for), the
   key creator node is asked (``query.make_epoch``) for a new one: it returns one envelope per
   member and the public HE context.
3. Each member gets its envelope (``query.accept_epoch``).

What the coordinator learns: the members' public identities, who the key creator is, the
envelopes' sizes and the public HE context (checked to hold no secret key). It cannot open an
envelope: each is sealed to one member's X25519 key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flwr.app import ConfigRecord

from fedrisk.coordinator.exchange import Exchange
from fedrisk.crypto import he
from fedrisk.crypto.identity import IdentityError, PublicIdentity
from fedrisk.crypto.signed import (
    ReplayGuard,
    SignedMessageError,
    unverified_payload,
    verify_message,
)
from fedrisk.protos.records import (
    Value,
    content,
    get_bytes,
    get_bytes_list,
    get_int,
    get_str,
    get_str_list,
    record,
)

log = logging.getLogger("fedrisk.coordinator")


class EnrollmentError(RuntimeError):
    """Enrollment cannot go on; the text says why."""


@dataclass(frozen=True)
class Enrolled:
    """The federation's members for this run: node ids, identities, epoch, public HE context."""

    epoch: int
    nodes: dict[int, PublicIdentity]  # Flower node id → member identity
    public_context: bytes | None  # None when the epoch was made in an earlier run

    @property
    def members(self) -> dict[str, PublicIdentity]:
        return {identity.fingerprint: identity for identity in self.nodes.values()}


def enroll(
    exchange: Exchange,
    node_ids: list[int],
    federation: str,
    registry: Mapping[str, PublicIdentity] | None,
    key_creator: str,
    rotate: bool = False,
) -> Enrolled:
    """Identities, then (when needed) a new epoch made by ``key_creator`` (a site id)."""
    identities, held = _identities(exchange, node_ids, federation, registry)
    epochs = set(held.values())
    if not rotate and len(epochs) == 1 and 0 not in epochs:
        epoch = epochs.pop()
        log.info("enrollment: %d members already hold epoch %d", len(identities), epoch)
        return Enrolled(epoch, identities, None)
    epoch = max(held.values(), default=0) + 1
    creator = next((n for n, i in identities.items() if i.site_id == key_creator), None)
    if creator is None:
        raise EnrollmentError(f"the key creator {key_creator!r} is not among the enrolled nodes")
    fields: dict[str, Value] = {
        "federation": federation,
        "epoch": epoch,
        "enrolled": [json.dumps(i.to_json()).encode() for i in identities.values()],
    }
    made = exchange({creator: ("query.make_epoch", content(fields))})
    if creator not in made:
        raise EnrollmentError(f"the key creator {key_creator} did not make epoch {epoch}")
    reply = record(made[creator])
    public_context = get_bytes(reply, "public_context")
    if not he.is_public(he.load_context(public_context)):
        raise EnrollmentError("the key creator sent an HE context with its secret key: refused")
    members = _relay(exchange, identities, reply, federation, epoch)
    log.info("enrollment: epoch %d made by %s, %d members", epoch, key_creator, len(members))
    return Enrolled(epoch, members, public_context)


def load_registry(folder: Path) -> dict[str, PublicIdentity]:
    """The identities the bureau registered: every ``*.json`` in ``folder``, by fingerprint."""
    registry = {}
    for path in sorted(folder.glob("*.json")):
        try:
            identity = PublicIdentity.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, IdentityError) as error:
            raise EnrollmentError(f"{path}: not a public identity ({error})") from None
        registry[identity.fingerprint] = identity
    return registry


def _identities(
    exchange: Exchange,
    node_ids: list[int],
    federation: str,
    registry: Mapping[str, PublicIdentity] | None,
) -> tuple[dict[int, PublicIdentity], dict[int, int]]:
    replies = exchange(
        {n: ("query.identity", content({"federation": federation})) for n in node_ids}
    )
    identities, held = {}, {}
    for node, reply in sorted(replies.items()):
        try:
            identity, epoch = _checked_identity(get_bytes(record(reply), "identity"), federation)
        except (SignedMessageError, IdentityError, ValueError, KeyError) as error:
            log.warning("enrollment: node %d refused: %s", node, error)
            continue
        if registry is not None and identity.fingerprint not in registry:
            log.warning(
                "enrollment: node %d (%s, %s) is not registered: refused",
                node,
                identity.site_id,
                identity.fingerprint,
            )
            continue
        identities[node], held[node] = identity, epoch
    if not identities:
        raise EnrollmentError("no registered node answered")
    return identities, held


def _checked_identity(message: bytes, federation: str) -> tuple[PublicIdentity, int]:
    """The identity in a self-signed reply; its signature proves the node holds the key."""
    payload = json.loads(unverified_payload(message))
    identity = PublicIdentity.from_json(payload["identity"])
    verify_message(message, identity, "identity", f"federation={federation}", ReplayGuard())
    return identity, int(payload["epoch"])


def _relay(
    exchange: Exchange,
    identities: dict[int, PublicIdentity],
    reply: ConfigRecord,
    federation: str,
    epoch: int,
) -> dict[int, PublicIdentity]:
    """Give each member its envelope; the members are those that accepted."""
    envelopes = dict(
        zip(get_str_list(reply, "recipients"), get_bytes_list(reply, "envelopes"), strict=True)
    )
    creator = get_str(reply, "creator")
    sends = {}
    for node, identity in identities.items():
        if identity.fingerprint in envelopes:
            fields: dict[str, Value] = {
                "federation": federation,
                "epoch": epoch,
                "creator": creator,
                "envelope": envelopes[identity.fingerprint],
            }
            sends[node] = ("query.accept_epoch", content(fields))
        else:
            log.warning("enrollment: %s got no envelope (not trusted)", identity.site_id)
    accepted = exchange(sends)
    members = {}
    for node in sends:
        if node in accepted and get_int(record(accepted[node]), "epoch") == epoch:
            members[node] = identities[node]
        else:
            log.warning("enrollment: %s did not accept epoch %d", identities[node].site_id, epoch)
    return members
