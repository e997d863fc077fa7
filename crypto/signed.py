"""Signed federation messages: who sent a payload, for which step of which run, exactly once.

Every payload a node puts into a Flower message (trees sealed for the other nodes, evaluation
histograms, enrollment replies) travels as a *signed message*:

    FRS1 ‖ len(header) ‖ header ‖ payload ‖ Ed25519(sender, "…signed-message\\0" ‖ all before)

(the framing of :mod:`fedrisk.crypto.framing`, which sealed envelopes share)

The header (canonical JSON) names the sender's fingerprint, the ``kind`` of payload, the
``context`` it belongs to (federation, epoch, run, round: whatever the step binds to), a random
id and the SHA-256 of the payload. Flower's own node authentication says which *SuperNode*
connected; this says which *site* produced the content, and holds end to end through the
coordinator, which relays without being able to alter or re-attribute anything.

What each party learns: whoever holds the message learns the header and the payload (seal the
payload first, e.g. with :mod:`fedrisk.crypto.aead`, when it must stay secret from the relay);
nobody can forge or change one without the sender's signing key. A receiver refuses a message
that is unsigned or malformed, signed by someone else, meant for another kind or context (an
old round replayed into a new one), or already seen (:class:`ReplayGuard`, by message id).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from fedrisk.crypto import framing
from fedrisk.crypto.identity import Identity, PublicIdentity

MAGIC = b"FRS1"
_SIGNED = b"fedrisk/v1/signed-message\0"
_FIELDS = ("v", "id", "sender", "kind", "context", "sha256")


class SignedMessageError(ValueError):
    """A message that must be refused; the text says why (it never quotes the payload)."""


@dataclass(frozen=True)
class Verified:
    """A message whose signature, kind, context and freshness were checked."""

    message_id: str
    sender: str  # fingerprint
    kind: str
    context: str
    payload: bytes


def sign_message(sender: Identity, kind: str, context: str, payload: bytes) -> bytes:
    """``payload`` signed by ``sender`` for one ``kind`` of step within one ``context``."""
    header = {
        "v": 1,
        "id": os.urandom(16).hex(),
        "sender": sender.public.fingerprint,
        "kind": kind,
        "context": context,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return framing.pack(MAGIC, header, payload, sender, _SIGNED)


def step_context(federation: str, epoch: int, *step: str | int) -> str:
    """The context string of one step of an epoch, e.g. ``federation=demo epoch=1 run=r round=2``:
    nodes and the coordinator build it alike, and a message is only valid in its own."""
    return " ".join([f"federation={federation}", f"epoch={epoch}", *map(str, step)])


def sender_of(message: bytes) -> str:
    """The fingerprint a message claims as its sender (unverified: to pick the key to verify)."""
    return str(_parse(message).fields["sender"])


def unverified_payload(message: bytes) -> bytes:
    """The payload before any check: only to read a self-signed message's own public key,
    which must then verify it (:func:`verify_message`)."""
    return _parse(message).body


@dataclass
class ReplayGuard:
    """Message ids already accepted; one guard per receiver and context (e.g. one run)."""

    seen: set[str] = field(default_factory=set)

    def admit(self, message_id: str) -> None:
        if message_id in self.seen:
            raise SignedMessageError(f"message {message_id} was already received (a replay)")
        self.seen.add(message_id)


def verify_message(
    message: bytes, sender: PublicIdentity, kind: str, context: str, guard: ReplayGuard
) -> Verified:
    """Check a message from ``sender`` for this ``kind`` and ``context``, and admit it once."""
    frame = _parse(message)
    fields, payload = frame.fields, frame.body
    name = f"message {fields['id']} ({fields['kind']!r} from {fields['sender']})"
    if fields["sender"] != sender.fingerprint:
        raise SignedMessageError(f"{name} is not from {sender.site_id} ({sender.fingerprint})")
    if not frame.verified_by(sender, _SIGNED):
        raise SignedMessageError(f"{name}: the signature does not verify")
    if hashlib.sha256(payload).hexdigest() != fields["sha256"]:  # signed, so only a bug here
        raise SignedMessageError(f"{name}: the payload does not match its digest")
    if fields["kind"] != kind:
        raise SignedMessageError(f"{name} is a {fields['kind']!r} message, not {kind!r}")
    if fields["context"] != context:
        raise SignedMessageError(
            f"{name} belongs to {fields['context']!r}, not to {context!r} (replayed from another"
            " run or round?)"
        )
    guard.admit(fields["id"])
    return Verified(fields["id"], fields["sender"], kind, context, payload)


def _parse(message: bytes) -> framing.Frame:
    """Split a message; refuses anything malformed, or with other header fields than v1's."""
    try:
        frame = framing.unpack(message, MAGIC, "signed fedrisk message")
    except framing.FrameError as error:
        raise SignedMessageError(str(error)) from None
    fields = frame.fields
    if sorted(fields) != sorted(_FIELDS) or fields["v"] != 1:
        raise SignedMessageError("signed message: header fields are not those of version 1")
    if not all(isinstance(fields[f], str) for f in _FIELDS if f != "v"):
        raise SignedMessageError("signed message: header fields must be strings")
    return frame
