"""Federation membership: one epoch's secret and HE context, made by the key creator and sealed
to each member through the coordinator.

The key creator (one node, chosen by the operators) makes, for a new epoch:

- the **federation secret** (32 random bytes), from which every per-step key is derived
  (:mod:`fedrisk.crypto.kdf`: sealed trees, blind tokens);
- a **TenSEAL context** with a fresh secret key (BFV, :data:`fedrisk.crypto.he.BFV`).

It seals ``{federation, epoch, secret, members, HE context}`` to each member's X25519 key
(:mod:`fedrisk.crypto.envelope`), and hands the coordinator only the envelopes and the *public*
HE context. Members are the enrolled identities that the creator's operator trusts
(``[[trust.federation_member]]`` in config.toml); an enrolled identity nobody trusted gets no
envelope. A member accepts an epoch only from a creator it trusts itself, and keeps it under
``HOME/secrets/federation/`` (0600).

What each party learns: members learn the secret, the HE secret key and the member list; the
coordinator learns who is a member, the envelopes' sizes and the public HE context, which
encrypts and adds but cannot decrypt; a node that was not trusted learns nothing.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fedrisk.crypto import he
from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.envelope import EnvelopeError, open_envelope, seal
from fedrisk.crypto.identity import Identity, IdentityError, PublicIdentity
from fedrisk.crypto.kdf import SECRET_BYTES
from fedrisk.crypto.signed import step_context
from fedrisk.models.errors import FedriskError
from fedrisk.node.home import NodeHome


class MembershipError(FedriskError):
    """An epoch that this node must not accept or cannot find; the text says why."""


@dataclass(frozen=True)
class Membership:
    """What a member holds for one epoch."""

    federation: str
    epoch: int
    secret: bytes
    creator: str  # fingerprint of the key creator
    members: tuple[PublicIdentity, ...]
    he_context: bytes  # with the secret key: never leaves the node unsealed

    def member(self, fingerprint: str) -> PublicIdentity:
        """A member's public identity; raises :class:`MembershipError` for a non-member."""
        for identity in self.members:
            if identity.fingerprint == fingerprint:
                return identity
        raise MembershipError(
            f"{fingerprint} is not a member of {self.federation} epoch {self.epoch}"
        )

    def context(self, *step: str | int) -> str:
        """The context string a step of this epoch is bound to (signed and sealed messages)."""
        return step_context(self.federation, self.epoch, *step)


@dataclass(frozen=True)
class NewEpoch:
    """What the key creator hands the coordinator: envelopes by member fingerprint, the public
    HE context, and which enrolled identities got nothing (not trusted)."""

    envelopes: dict[str, bytes]
    public_context: bytes
    refused: tuple[str, ...]
    membership: Membership


def purpose(federation: str, epoch: int) -> str:
    return f"fedrisk/federation-secret/{federation}/epoch-{epoch}"


def make_epoch(
    home: NodeHome,
    creator: Identity,
    federation: str,
    epoch: int,
    enrolled: Iterable[PublicIdentity],
) -> NewEpoch:
    """The key creator's step: a new secret and HE context, sealed to every trusted member."""
    trusted = home.trusted("federation_member")
    members, refused = [creator.public], []
    for identity in enrolled:
        if identity.fingerprint == creator.public.fingerprint:
            continue
        if identity.fingerprint in trusted:
            members.append(identity)
        else:
            refused.append(f"{identity.site_id} ({identity.fingerprint})")
    members.sort(key=lambda m: m.fingerprint)
    context = he.new_context(he.BFV)
    membership = Membership(
        federation,
        epoch,
        os.urandom(SECRET_BYTES),
        creator.public.fingerprint,
        tuple(members),
        he.export_private(context),
    )
    payload = _encode(membership)
    envelopes = {
        m.fingerprint: seal(creator, m, purpose(federation, epoch), payload) for m in members
    }
    return NewEpoch(envelopes, he.export_public(context), tuple(refused), membership)


def accept_epoch(
    home: NodeHome, identity: Identity, creator: str, federation: str, epoch: int, envelope: bytes
) -> Membership:
    """A member's step: open the creator's envelope (the creator must be trusted here) and keep
    the epoch under the node's secrets."""
    sender = _trusted_creator(home, identity, creator)
    try:
        opened = open_envelope(identity, sender, purpose(federation, epoch), envelope)
        membership = _decode(opened.payload, creator)
    except (EnvelopeError, IdentityError, ValueError, KeyError) as error:
        raise MembershipError(f"epoch {epoch} of {federation} refused: {error}") from None
    if (membership.federation, membership.epoch) != (federation, epoch):
        held = f"{membership.federation} epoch {membership.epoch}"
        raise MembershipError(f"the envelope holds {held}, not {federation} epoch {epoch}")
    membership.member(identity.public.fingerprint)  # this node must be on the list
    save(home, membership)
    return membership


def save(home: NodeHome, membership: Membership) -> Path:
    """Write an epoch under ``HOME/secrets/federation/<federation>/`` with mode 0600."""
    folder = home.secrets / "federation" / membership.federation
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"epoch-{membership.epoch}.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(_encode(membership))
    return path


def load(home: NodeHome, federation: str, epoch: int | None = None) -> Membership:
    """An epoch this node accepted (the latest when ``epoch`` is None)."""
    folder = home.secrets / "federation" / federation
    epochs = sorted(int(p.stem.split("-")[1]) for p in folder.glob("epoch-*.json"))
    if not epochs or (epoch is not None and epoch not in epochs):
        which = "any epoch" if epoch is None else f"epoch {epoch}"
        raise MembershipError(f"this node holds no {which} of federation {federation!r}")
    chosen = epochs[-1] if epoch is None else epoch
    data = (folder / f"epoch-{chosen}.json").read_bytes()
    return _decode(data, json.loads(data)["creator"])


def _trusted_creator(home: NodeHome, identity: Identity, creator: str) -> PublicIdentity:
    if creator == identity.public.fingerprint:
        return identity.public
    trusted = home.trusted("federation_member")
    if creator not in trusted:
        raise MembershipError(
            f"key creator {creator} is not a trusted federation member of this node"
            " (fedrisk federation trust IDENTITY.json)"
        )
    return trusted[creator]


def _encode(membership: Membership) -> bytes:
    return canonical_json(
        {
            "federation": membership.federation,
            "epoch": membership.epoch,
            "creator": membership.creator,
            "secret": base64.b64encode(membership.secret).decode("ascii"),
            "members": [m.to_json() for m in membership.members],
            "he_context": base64.b64encode(membership.he_context).decode("ascii"),
        }
    )


def _decode(data: bytes, creator: str) -> Membership:
    fields = json.loads(data)
    secret = base64.b64decode(fields["secret"], validate=True)
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"the federation secret has {len(secret)} bytes, not {SECRET_BYTES}")
    if fields["creator"] != creator:
        raise ValueError(f"the epoch names creator {fields['creator']}, not {creator}")
    return Membership(
        str(fields["federation"]),
        int(fields["epoch"]),
        secret,
        creator,
        tuple(PublicIdentity.from_json(m) for m in fields["members"]),
        base64.b64decode(fields["he_context"], validate=True),
    )
