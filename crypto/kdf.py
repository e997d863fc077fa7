"""Keys per use, derived from one federation secret with HKDF-SHA256.

Each use has its own label, and the label (with any context, such as a job and a time window)
is the HKDF ``info``; keys for different uses are therefore independent, and learning one (a
token key handed to a matching step, say) reveals nothing about another.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedrisk.crypto.canonical import encode_fields

SECRET_BYTES = 32


class KeyUse(StrEnum):
    """What a derived key is for; a new use gets a new label, never a reused one."""

    TOKEN = "fedrisk/v1/token"  # blind tokens of one matching job and time window
    MODEL = "fedrisk/v1/model"  # sealing model trees between nodes
    MESSAGE = "fedrisk/v1/message"  # authenticating federation messages between nodes


def derive_key(
    secret: bytes, use: KeyUse, *context: str | int | bytes, length: int = SECRET_BYTES
) -> bytes:
    """The key for ``use`` (and ``context``) derived from ``secret``."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"the federation secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    info = encode_fields([use.value, *context])
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)
