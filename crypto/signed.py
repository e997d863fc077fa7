"""Signed federation messages: who sent a payload, for which step of which run, exactly once.

Every payload a node puts into a Flower message (trees sealed for the other nodes, evaluation
histograms, enrollment replies) travels as a *signed message*:

    FRS1 ‖ len(header) ‖ header ‖ payload ‖ Ed25519(sender, "…signed-message\\0" ‖ all before)

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
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity

MAGIC = b"FRS1"
_LENGTH_BYTES = 4
_SIGNATURE_BYTES = 64
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
    header = canonical_json(
        {
            "v": 1,
            "id": os.urandom(16).hex(),
            "sender": sender.public.fingerprint,
            "kind": kind,
            "context": context,
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    )
    body = MAGIC + len(header).to_bytes(_LENGTH_BYTES, "big") + header + payload
    return body + sender.sign(_SIGNED + body)


def step_context(federation: str, epoch: int, *step: str | int) -> str:
    """The context string of one step of an epoch, e.g. ``federation=demo epoch=1 run=r round=2``:
    nodes and the coordinator build it alike, and a message is only valid in its own."""
    return " ".join([f"federation={federation}", f"epoch={epoch}", *map(str, step)])


def sender_of(message: bytes) -> str:
    """The fingerprint a message claims as its sender (unverified: to pick the key to verify)."""
    return _parse(message)[0]["sender"]


def unverified_payload(message: bytes) -> bytes:
    """The payload before any check: only to read a self-signed message's own public key,
    which must then verify it (:func:`verify_message`)."""
    return _parse(message)[1]


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
    fields, payload, signature = _parse(message)
    name = f"message {fields['id']} ({fields['kind']!r} from {fields['sender']})"
    if fields["sender"] != sender.fingerprint:
        raise SignedMessageError(f"{name} is not from {sender.site_id} ({sender.fingerprint})")
    try:
        sender.verifier().verify(signature, _SIGNED + message[:-_SIGNATURE_BYTES])
    except InvalidSignature:
        raise SignedMessageError(f"{name}: the signature does not verify") from None
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


def _parse(message: bytes) -> tuple[dict[str, str], bytes, bytes]:
    """Header fields, payload and signature; refuses anything malformed."""
    start = len(MAGIC) + _LENGTH_BYTES
    if len(message) < start + _SIGNATURE_BYTES or not message.startswith(MAGIC):
        raise SignedMessageError("not a signed fedrisk message (unsigned, or bad magic)")
    end = start + int.from_bytes(message[len(MAGIC) : start], "big")
    if end + _SIGNATURE_BYTES > len(message):
        raise SignedMessageError("signed message: header length runs past the end")
    header = message[start:end]
    try:
        fields = json.loads(header)
        if not isinstance(fields, dict) or canonical_json(fields) != header:
            raise ValueError("header is not canonical JSON")
        if sorted(fields) != sorted(_FIELDS) or fields["v"] != 1:
            raise ValueError("header fields are not those of version 1")
        if not all(isinstance(fields[f], str) for f in _FIELDS if f != "v"):
            raise ValueError("header fields must be strings")
    except ValueError as error:
        raise SignedMessageError(f"signed message: malformed header ({error})") from None
    return fields, message[end:-_SIGNATURE_BYTES], message[-_SIGNATURE_BYTES:]
