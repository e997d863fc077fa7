"""Sealed envelopes: a secret for one recipient and one purpose, signed by its sender.

Sealing (sender → recipient, through any relay):

1. The sender makes a fresh X25519 key pair and computes the shared secret with the recipient's
   receiving key.
2. HKDF-SHA256 turns it into an AES-256-GCM key and nonce; the HKDF info is the header, which
   names the purpose, the sender, the recipient and the ephemeral key, so the key is bound to
   all four.
3. The payload is encrypted with the header as associated data, and the sender signs
   ``header ‖ ciphertext`` with Ed25519.

What each party learns: the recipient learns the payload and that the named sender sealed it
for this purpose; a relay (the coordinator) learns the header — who sends to whom, for which
purpose, when, and the payload's length — and nothing of the payload; any other node learns
the same as the relay, as the shared secret needs the recipient's private key.

Opening fails loudly (:class:`EnvelopeError`) on a wrong recipient, a wrong purpose, an
unexpected sender, a bad signature or any changed byte. Each envelope carries a random id, so
a receiver can also refuse one it has already opened.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedrisk.crypto import framing
from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity

MAGIC = b"FRE1"
_KDF_INFO = b"fedrisk/v1/envelope-key\0"
_SIGNED = b"fedrisk/v1/envelope-signature\0"


class EnvelopeError(ValueError):
    """An envelope that must not be opened; the message says why."""


@dataclass(frozen=True)
class Opened:
    """An opened envelope: its payload and what its header said."""

    envelope_id: str
    purpose: str
    sender: str  # fingerprint
    created: str
    payload: bytes


def seal(sender: Identity, recipient: PublicIdentity, purpose: str, payload: bytes) -> bytes:
    """Seal ``payload`` for ``recipient`` under ``purpose``, signed by ``sender``."""
    recipient.check()
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    fields = {
        "v": 1,
        "id": os.urandom(16).hex(),
        "purpose": purpose,
        "sender": sender.public.fingerprint,
        "recipient": recipient.fingerprint,
        "ephemeral": base64.b64encode(ephemeral_public).decode("ascii"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    header = canonical_json(fields)
    key, nonce = _key_and_nonce(ephemeral.exchange(recipient.receiver()), header)
    ciphertext = AESGCM(key).encrypt(nonce, payload, header)
    return framing.pack(MAGIC, fields, ciphertext, sender, _SIGNED)


def open_envelope(
    recipient: Identity, sender: PublicIdentity, purpose: str, envelope: bytes
) -> Opened:
    """Check and open an envelope sealed by ``sender`` for this recipient and ``purpose``."""
    frame = _parse(envelope)
    fields, name = frame.fields, f"envelope {frame.fields['id']}"
    if fields["recipient"] != recipient.public.fingerprint:
        raise EnvelopeError(
            f"{name} is addressed to node {fields['recipient']}, "
            f"not to this node ({recipient.public.fingerprint})"
        )
    if fields["purpose"] != purpose:
        raise EnvelopeError(f"{name} was sealed for purpose {fields['purpose']!r}, not {purpose!r}")
    if fields["sender"] != sender.fingerprint:
        raise EnvelopeError(f"{name} names sender {fields['sender']}, not {sender.fingerprint}")
    if not frame.verified_by(sender, _SIGNED):
        raise EnvelopeError(f"{name}: the sender's signature does not verify")
    try:
        ephemeral = X25519PublicKey.from_public_bytes(base64.b64decode(fields["ephemeral"]))
        key, nonce = _key_and_nonce(recipient.exchange(ephemeral), frame.header)
        payload = AESGCM(key).decrypt(nonce, frame.body, frame.header)
    except (InvalidTag, ValueError):
        raise EnvelopeError(f"{name} does not decrypt with this node's key") from None
    return Opened(fields["id"], purpose, fields["sender"], fields["created"], payload)


def _key_and_nonce(shared: bytes, header: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=None, info=_KDF_INFO + header).derive(
        shared
    )
    return okm[:32], okm[32:]


def _parse(envelope: bytes) -> framing.Frame:
    """Split an envelope into its parts; raises :class:`EnvelopeError` if it is malformed."""
    try:
        frame = framing.unpack(envelope, MAGIC, "fedrisk envelope")
    except framing.FrameError as error:
        raise EnvelopeError(str(error)) from None
    for field in ("id", "purpose", "sender", "recipient", "ephemeral", "created"):
        if not isinstance(frame.fields.get(field), str):
            raise EnvelopeError(f"envelope header is malformed (header field {field!r} missing)")
    return frame
