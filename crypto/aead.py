"""Authenticated encryption of small values at rest (AES-256-GCM, random 96-bit nonces).

Used for the identity vault: each identifier is encrypted on its own, bound by the associated
data to what it is (kind and pseudonym), so a ciphertext moved to another row fails to open.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


def encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """``nonce ‖ ciphertext ‖ tag`` of ``plaintext`` under ``key``, bound to ``associated_data``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Open what :func:`encrypt` produced.

    Raises ``cryptography.exceptions.InvalidTag`` when the key, the associated data or any byte
    of ``sealed`` is wrong.
    """
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
