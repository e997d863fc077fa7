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
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity

MAGIC = b"FRE1"
_HEADER_LENGTH_BYTES = 4
_SIGNATURE_BYTES = 64
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
    header = canonical_json(
        {
            "v": 1,
            "id": os.urandom(16).hex(),
            "purpose": purpose,
            "sender": sender.public.fingerprint,
            "recipient": recipient.fingerprint,
            "ephemeral": base64.b64encode(ephemeral_public).decode("ascii"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    key, nonce = _key_and_nonce(ephemeral.exchange(recipient.receiver()), header)
    ciphertext = AESGCM(key).encrypt(nonce, payload, header)
    body = MAGIC + len(header).to_bytes(_HEADER_LENGTH_BYTES, "big") + header + ciphertext
    return body + sender.sign(_SIGNED + body)


def open_envelope(
    recipient: Identity, sender: PublicIdentity, purpose: str, envelope: bytes
) -> Opened:
    """Check and open an envelope sealed by ``sender`` for this recipient and ``purpose``."""
    parsed = _parse(envelope)
    fields, name = parsed.fields, f"envelope {parsed.fields['id']}"
    if fields["recipient"] != recipient.public.fingerprint:
        raise EnvelopeError(
            f"{name} is addressed to node {fields['recipient']}, "
            f"not to this node ({recipient.public.fingerprint})"
        )
    if fields["purpose"] != purpose:
        raise EnvelopeError(f"{name} was sealed for purpose {fields['purpose']!r}, not {purpose!r}")
    if fields["sender"] != sender.fingerprint:
        raise EnvelopeError(f"{name} names sender {fields['sender']}, not {sender.fingerprint}")
    try:
        sender.verifier().verify(parsed.signature, _SIGNED + parsed.body)
    except InvalidSignature:
        raise EnvelopeError(f"{name}: the sender's signature does not verify") from None
    try:
        ephemeral = X25519PublicKey.from_public_bytes(base64.b64decode(fields["ephemeral"]))
        key, nonce = _key_and_nonce(recipient.exchange(ephemeral), parsed.header)
        payload = AESGCM(key).decrypt(nonce, parsed.ciphertext, parsed.header)
    except (InvalidTag, ValueError):
        raise EnvelopeError(f"{name} does not decrypt with this node's key") from None
    return Opened(fields["id"], purpose, fields["sender"], fields["created"], payload)


def _key_and_nonce(shared: bytes, header: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=None, info=_KDF_INFO + header).derive(
        shared
    )
    return okm[:32], okm[32:]


@dataclass(frozen=True)
class _Parsed:
    header: bytes
    fields: dict[str, str]
    ciphertext: bytes
    signature: bytes

    @property
    def body(self) -> bytes:
        """What the sender signed: magic, header length, header and ciphertext."""
        length = len(self.header).to_bytes(_HEADER_LENGTH_BYTES, "big")
        return MAGIC + length + self.header + self.ciphertext


def _parse(envelope: bytes) -> _Parsed:
    """Split an envelope into its parts; raises :class:`EnvelopeError` if it is malformed."""
    start = len(MAGIC) + _HEADER_LENGTH_BYTES
    if len(envelope) < start + _SIGNATURE_BYTES or not envelope.startswith(MAGIC):
        raise EnvelopeError("not a fedrisk envelope (bad magic or too short)")
    end = start + int.from_bytes(envelope[len(MAGIC) : start], "big")
    if end + _SIGNATURE_BYTES > len(envelope):
        raise EnvelopeError("envelope header length runs past the end")
    header = envelope[start:end]
    try:
        fields = json.loads(header)
        if canonical_json(fields) != header:
            raise ValueError("header is not in canonical form")
        for field in ("id", "purpose", "sender", "recipient", "ephemeral", "created"):
            if not isinstance(fields.get(field), str):
                raise ValueError(f"header field {field!r} missing")
    except ValueError as exc:
        raise EnvelopeError(f"envelope header is malformed ({exc})") from None
    return _Parsed(header, fields, envelope[end:-_SIGNATURE_BYTES], envelope[-_SIGNATURE_BYTES:])
