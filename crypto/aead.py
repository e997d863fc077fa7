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
    return encrypt_many(key, [(plaintext, associated_data)])[0]


def encrypt_many(key: bytes, items: list[tuple[bytes, bytes]]) -> list[bytes]:
    """:func:`encrypt` of many ``(plaintext, associated_data)`` pairs, one key schedule."""
    cipher = AESGCM(key)
    # One read of the OS generator for all the nonces (a system call per value cost a third
    # of the encryption); each nonce is still 96 independent random bits.
    randomness = os.urandom(NONCE_BYTES * len(items))
    sealed = []
    for i, (plaintext, associated_data) in enumerate(items):
        nonce = randomness[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
        sealed.append(nonce + cipher.encrypt(nonce, plaintext, associated_data))
    return sealed


def decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Open what :func:`encrypt` produced.

    Raises ``cryptography.exceptions.InvalidTag`` when the key, the associated data or any byte
    of ``sealed`` is wrong.
    """
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
