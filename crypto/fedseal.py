"""Payloads sealed for the federation's nodes, signed by their sender, relayed by anyone.

A node seals a payload (e.g. the trees it boosted this round) for the other nodes:

1. key = HKDF(federation secret, ``KeyUse.MODEL``, kind, context) — one key per step, so a
   ciphertext of one round cannot be passed off in another;
2. AES-256-GCM with the sender's fingerprint, the kind and the context as associated data;
3. the ciphertext is then a :mod:`signed message <fedrisk.crypto.signed>` of the sender.

What each party learns: every enrolled node (it holds the epoch's secret) learns the payload
and who sent it; the coordinator relaying it can check who sent it, for which step, and its
length — nothing of its content, and it cannot alter, re-attribute or replay it unnoticed.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag

from fedrisk.crypto import aead
from fedrisk.crypto.canonical import encode_fields
from fedrisk.crypto.identity import Identity, PublicIdentity
from fedrisk.crypto.kdf import KeyUse, derive_key
from fedrisk.crypto.signed import (
    ReplayGuard,
    SignedMessageError,
    Verified,
    sign_message,
    verify_message,
)


def seal_for_federation(
    secret: bytes, sender: Identity, kind: str, context: str, payload: bytes
) -> bytes:
    """``payload`` encrypted under the step's federation key and signed by ``sender``."""
    key = derive_key(secret, KeyUse.MODEL, kind, context)
    sealed = aead.encrypt(key, payload, _bound(sender.public.fingerprint, kind, context))
    return sign_message(sender, kind, context, sealed)


def open_from_federation(
    secret: bytes,
    message: bytes,
    sender: PublicIdentity,
    kind: str,
    context: str,
    guard: ReplayGuard,
) -> Verified:
    """Verify a sealed payload from ``sender`` for this step and decrypt it (raises
    :class:`SignedMessageError` when anything is wrong, including a wrong federation key)."""
    verified = verify_message(message, sender, kind, context, guard)
    key = derive_key(secret, KeyUse.MODEL, kind, context)
    try:
        payload = aead.decrypt(key, verified.payload, _bound(sender.fingerprint, kind, context))
    except InvalidTag:
        raise SignedMessageError(
            f"message {verified.message_id} from {sender.site_id} does not decrypt with this"
            " epoch's federation key"
        ) from None
    return Verified(verified.message_id, verified.sender, kind, context, payload)


def _bound(fingerprint: str, kind: str, context: str) -> bytes:
    return encode_fields([fingerprint, kind, context])
